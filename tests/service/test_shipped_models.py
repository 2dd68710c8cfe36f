"""Every model folder shipped in models/ loads through the engine on the CPU provider, its card
agrees with its files, and /sample's npy answer for a fixed seed has a pinned sha256: a changed
default model, a re-exported generator or a drifting latent draw is seen here.

What is pinned is the generator's samples only (npy, no scores): discriminators may be
re-exported without changing any sample. Two digests per folder:
- `latents`: the seed's latent draw (numpy's PCG64 in the service): the same bytes on every machine;
- `samples`: /sample's npy answer, on the CPU provider of the host where it was pinned (AMD EPYC,
  AVX2 + FMA). onnxruntime picks its CPU kernels by vector extension, so a host with other ones
  (AVX-512) may differ in the last bits: ARCHITECTURE.md promises samples "up to float tolerance"
  across machines, bytes only on one. There the failure says so, with the digest it got.

The folders are listed at collection time: a new shipped model gets its own test, which fails
until its digests are pinned in PINNED.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from models.card import GRAPH_FILES, ModelCard, sha256_of
from service.core import latents
from service.runtime.engine import Engine, model_folders

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models"
REQUEST = {"n": 8, "seed": 2014, "format": "npy"}
DRAWS_FACTOR = 20  # unused without a filter; the server's default
# folder -> sha256 of (latents as float32 bytes, /sample's npy answer) for REQUEST.
PINNED = {
    "grid25": {
        "latents": "78cb3558b9cbc7c7cd31224afc04d6a04b21dca597f8c4180fd21788bafd54f7",
        "samples": "69c2a13ad778c8925f38550f371a2003db7657e6fde5b86c5014481bbb68dc33",
    },
    "mnist": {
        "latents": "7212ee91cd0b33eef5787e7428b68c4bf39d9587e80802051e232f277486d855",
        "samples": "eff0a835a4aabf2aed4acbbe6b14b072e349af8db62029895b721e3a69608046",
    },
    "ring8": {
        "latents": "78cb3558b9cbc7c7cd31224afc04d6a04b21dca597f8c4180fd21788bafd54f7",
        "samples": "43d1593a52e9d26e0f9678fd55ab71e5b73bdb6302361c5bf2bee0b05193eb25",
    },
    "mnist-cond": {
        "latents": "7212ee91cd0b33eef5787e7428b68c4bf39d9587e80802051e232f277486d855",
        "samples": "86a9905ece5b50c1e369e463e4238ae06093005729d6d6a485f3bc04707ca038",
    },
    "patches": {
        "latents": "5d3a2e37795e814354c4cb68e7e94d1ea9d658965b392f07c4d5049169ba9593",
        "samples": "814761705597473c42e1bc64852dd89370ae9736bbc3e5dd215e8a0b9b9fe21e",
    },
    "toy1d": {
        "latents": "83e2589b91b3647e75d0ce2626519752735758f0ae3ba02ab81adc78570541c3",
        "samples": "c9748bf8cbd6d4cdc1d915500e8a67ddca103484f8837188e223a80647473cdb",
    },
}
FOLDERS = [p.name for p in model_folders(SHIPPED)]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_models_holds_the_shipped_folders():
    assert {"mnist", "toy1d"} <= set(FOLDERS)  # the paper's two; a listing come back short fails
    assert not (set(PINNED) - set(FOLDERS)), f"pinned but no longer shipped: {sorted(set(PINNED) - set(FOLDERS))}"


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("folder", FOLDERS)
def test_a_shipped_model_loads_on_cpu_and_answers_its_pinned_samples(folder):
    # Imported here, after the `app` fixture: service.core.schemas reads the settings (max n) once, at
    # import; imported first, it would fix them before the in-process app's test settings.
    from service.core.schemas import SampleRequest
    from service.http import handlers

    engine = Engine.from_folder(SHIPPED / folder, device="cpu")
    model = engine.get(folder)
    card = model.card
    # The card: valid (the engine verified it and every file's sha256 and graph signature), named
    # as its folder, and what it says of its files and samples is what the folder holds.
    assert isinstance(card, ModelCard) and card.name == folder and card.description
    for role, name in GRAPH_FILES.items():  # every graph file it holds listed, none it lacks
        path = SHIPPED / folder / name
        assert (role in card.files) == path.is_file(), f"{path}: on disk and in the card's files must agree"
        entry = card.files.get(role)
        assert entry is None or (
            entry.name == name and entry.sha256 == sha256_of(path) and entry.bytes == path.stat().st_size
        )
    assert model.provider == "CPUExecutionProvider"

    response = handlers.sample(engine, SampleRequest(**REQUEST), DRAWS_FACTOR)
    assert response.status_code == 200 and response.media_type == "application/x-npy"
    x = np.load(io.BytesIO(response.body), allow_pickle=False)
    assert x.dtype == np.float32 and x.shape == (REQUEST["n"], *card.sample.shape) and np.isfinite(x).all()
    assert response.headers["x-model"] == folder and response.headers["x-seed"] == str(REQUEST["seed"])
    if card.sample.kind == "image":  # a vector model's range is its data's, not a bound on G
        low, high = card.sample.value_range
        assert low <= x.min() and x.max() <= high

    z = latents.draw(latents.generator(REQUEST["seed"]), card.latent, REQUEST["n"])
    got = {"latents": digest(np.ascontiguousarray(z, np.float32).tobytes()), "samples": digest(response.body)}
    pinned = PINNED.get(folder)
    assert pinned, (
        f"models/{folder} is shipped but has no pinned digests: add "
        f"{folder!r}: {got!r} to PINNED in {Path(__file__).name}"
    )
    assert got["latents"] == pinned["latents"], f"the latent draw of seed {REQUEST['seed']} changed: {got}"
    assert got["samples"] == pinned["samples"], (
        f"/sample's npy answer for {REQUEST} changed: {got['samples']} (pinned {pinned['samples']}). Either the "
        f"generator of models/{folder} changed (then re-pin, and say why in the commit), or this host's CPU "
        "kernels differ from the pinning host's (AVX2 + FMA, see the module docstring)"
    )


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("folder", [f for f in FOLDERS if (SHIPPED / f / GRAPH_FILES["discriminator"]).is_file()])
def test_a_shipped_models_drs_answer_carries_realness_from_the_served_logit(folder):
    """`drs` with scores, as /sample answers it: every returned realness is sigmoid of D's first
    output on that sample, also where the card keeps the training D's ratio (ratio.onnx) for DRS."""
    from service.core.schemas import SampleRequest
    from service.http import handlers

    engine = Engine.from_folder(SHIPPED / folder, device="cpu")
    model = engine.get(folder)
    response = handlers.sample(engine, SampleRequest(n=64, seed=5, format="json", drs=True, scores=True), DRAWS_FACTOR)
    assert response.status_code == 200
    body = json.loads(response.body)
    x = np.asarray(body["samples"], np.float32).reshape(-1, *model.card.sample.shape)
    c = np.asarray(body["labels"], np.int64) if model.card.condition is not None else None  # D(x | c)
    got = np.asarray(body["realness"], np.float64)
    assert len(x) == len(got) == 64 and body["drs_gamma"] == pytest.approx(model.card.realness.drs_gamma or 0.0)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-model.logits(x, c).astype(np.float64))), atol=1e-5)
    ratio = model.ratio_logits(x, c)  # apart from realness exactly where the card says so
    assert (model.card.realness.drs_ratio == "training") == (ratio is not None)
    if ratio is not None:
        assert not np.allclose(ratio, model.logits(x, c))


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_dataset_manifest_names_every_graph_file_the_model_serves_with(folder):
    """A `drs` dataset of mnist depends on ratio.onnx as much as on D: the manifest records each sha256."""
    from service.datasets.manifest import model_ref

    card = ModelCard.model_validate_json((SHIPPED / folder / "model.json").read_text())
    ref = model_ref(card)
    recorded = {"generator": ref.generator_sha256, "discriminator": ref.discriminator_sha256, "ratio": ref.ratio_sha256}
    single_graph_roles = ("generator", "discriminator", "ratio")  # the shipped folders are single-graph
    assert recorded == {role: (card.files[role].sha256 if role in card.files else None) for role in single_graph_roles}
