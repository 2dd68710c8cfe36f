"""Every door, the same answer: each way into the service returns what the reference
(tests/service/reference.py: the card, the seed's latents and onnxruntime, nothing else) says a
request must return, bit for bit on the same engine.

Doors: /sample on the event loop (batched, and inline for a lone client), /sample in a worker
thread (forced), GET /sample (its query), /interpolate, /v2 infer, json, npy and png answers, whole and streamed; over a
real server, ganserve's Python client, BentoML's own client and the dataset generator's HTTP
source; and the dataset generator from a local folder. Hypothesis draws the requests (a fixed
derandomized profile in CI, a longer one with HYPOTHESIS_PROFILE=dev); a failure prints the request
as a curl command line.
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.service.reference import Expected, Reference, curl
from tests.service.support import COND, DEFAULT, STYLE, TOKEN

RING = "tiny-ring"
MODELS = (DEFAULT, RING, COND, STYLE)  # an image MLP, a vector MLP, a conditional pair, a style-based G
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOOR_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def refs(service_models_dir) -> dict[str, Reference]:
    return {name: Reference(service_models_dir / name) for name in MODELS}


def request_bodies(ref_name: str, refs: dict[str, Reference]) -> st.SearchStrategy[dict]:
    card = refs[ref_name].card
    image = card.sample.kind == "image"
    formats = ["json", "npy", "png"] if image else ["json", "npy"]
    # 64 and more: npy answers stream in blocks under the tests' settings (core/streaming.py)
    n = st.one_of(st.integers(1, 24), st.integers(64, 80))

    @st.composite
    def body(draw) -> dict:
        out = {"model": ref_name, "format": draw(st.sampled_from(formats))}
        size = draw(n)
        if card.style is not None:
            return draw(style_body(out, size))
        if draw(st.booleans()):
            out["seed"] = draw(st.integers(0, 2**64 - 1))
            out["n"] = size
            if draw(st.booleans()):  # both sides of the loop's keep-probability threshold
                out["truncation"] = draw(st.sampled_from([0.3, 0.6, 1.0, 2.0]))
        else:
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            out["latents"] = rng.standard_normal((size, card.latent.dim)).astype(np.float32).tolist()
        if card.condition is not None and (draw(st.booleans()) or "latents" in out):
            k = card.condition.classes
            out["labels"] = draw(
                st.one_of(
                    st.integers(0, k - 1),
                    st.just("balanced"),
                    st.lists(st.integers(0, k - 1), min_size=size, max_size=size),
                )
            )
        if out["format"] == "json":
            out["scores"] = draw(st.booleans())
        # A filter the reference can follow: a threshold on explicit latents, or 0 on a seed's
        # untruncated draws (a filter draws its candidates in rounds of 2n or more, and a truncated
        # draw's redraws depend on the round's size, so its first n are not the unfiltered ones).
        if out["format"] != "png" and "truncation" not in out and draw(st.integers(0, 3)) == 0:
            out["min_realness"] = 0.0 if "seed" in out else draw(st.floats(0.0, 1.0))
        if out["format"] != "png" and image:
            out["dtype"] = draw(st.sampled_from(["float32", "uint8"]))
        if out["format"] == "png" and draw(st.booleans()):
            out["nrow"] = draw(st.integers(1, 6))
        return out

    @st.composite
    def style_body(draw, out: dict, size: int) -> dict:
        """A style-based model's request: seed, latents or w, and the w-space fields (docs/API.md)."""
        style, k = card.style, card.condition.classes if card.condition else 0
        source = draw(st.sampled_from(["seed", "latents", "w"]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        if source == "seed":
            out |= {"seed": draw(st.integers(0, 2**64 - 1)), "n": size}
        elif source == "latents":
            out["latents"] = rng.standard_normal((size, card.latent.dim)).astype(np.float32).tolist()
        else:
            per_layer = draw(st.booleans())
            shape = (size, style.num_ws, style.w_dim) if per_layer else (size, style.w_dim)
            out["w"] = rng.standard_normal(shape).astype(np.float32).tolist()
        if k and (source != "seed" or draw(st.booleans())):
            out["labels"] = draw(
                st.one_of(st.integers(0, k - 1), st.lists(st.integers(0, k - 1), min_size=size, max_size=size))
            )
        if draw(st.booleans()):
            out["truncation_psi"] = draw(st.sampled_from([0.0, 0.5, 0.7, 1.0, 1.5]))
            if draw(st.booleans()):
                out["truncation_cutoff"] = draw(st.integers(1, style.num_ws))
        if draw(st.booleans()):
            out["mix"] = {"seed": draw(st.integers(0, 2**64 - 1)), "from_layer": draw(st.integers(0, style.num_ws - 1))}
        if out["format"] == "json":
            out["scores"] = draw(st.booleans())
            out["return_w"] = draw(st.booleans())
        return out

    return body()


def answer_of(ref: Reference, body: dict, r: httpx.Response) -> Expected:
    """The samples, logits and labels an answer carries, in the reference's terms."""
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}\n{curl('/sample', body)}"
    fmt = body.get("format", "json")
    if fmt == "json":
        got = r.json()
        dtype = np.uint8 if got["dtype"] == "uint8" else np.float32
        logits = np.asarray(got["logit"], np.float32) if "logit" in got else None
        labels = np.asarray(got["labels"], np.int64) if "labels" in got else None
        w = np.asarray(got["w"], np.float32) if "w" in got else None
        return Expected(np.asarray(got["samples"], dtype).reshape(got["shape"]), logits, labels, w)
    labels = r.headers.get("x-labels")
    if labels is not None:  # present and empty: a conditional model's answer that kept no sample
        labels = np.array([int(v) for v in labels.split(",") if v], np.int64)
    if fmt == "npy":
        return Expected(np.load(io.BytesIO(r.content), allow_pickle=False), None, labels)
    pixels = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB" if ref.card.sample.shape[0] == 3 else "L"))
    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    n, nrow = int(r.headers["x-shape"].split(",")[0]), body.get("nrow")
    if body.get("labels") == "balanced" and nrow is None:  # one row per class (assert_balanced_grid)
        nrow = ref.balanced_rows(labels)
        n = ref.card.condition.classes * nrow
    return Expected(ref.grid_tiles(pixels, n, nrow), None, labels)


def assert_same(
    ref: Reference, body: dict, got: Expected, want: Expected, path: str = "/sample", door: str = ""
) -> None:
    where = f"door {door}: {curl(path, body)}"
    fmt, dtype = body.get("format", "json"), body.get("dtype", "float32")
    if fmt == "png" and body.get("labels") == "balanced" and body.get("nrow") is None:
        return assert_balanced_grid(ref, got, want, where)
    expected = ref.uint8(want.samples) if fmt == "png" or dtype == "uint8" else want.samples
    assert got.samples.shape == expected.shape, where
    assert np.array_equal(got.samples, expected), f"samples differ from the reference; {where}"
    if want.logits is not None:
        assert np.array_equal(got.logits, want.logits), f"logits differ from the reference; {where}"
    if want.labels is not None:
        assert np.array_equal(got.labels, want.labels), f"labels differ from the reference; {where}"
    if want.w is not None:
        assert got.w is not None and np.array_equal(got.w, want.w), f"w differs from the reference; {where}"


def assert_balanced_grid(ref: Reference, got: Expected, want: Expected, where: str) -> None:
    """A "balanced" png grid without nrow lays class k's samples in row k, in their order, short
    rows padded with blank tiles (docs/API.md)."""
    k, per_row = ref.card.condition.classes, ref.balanced_rows(want.labels)
    blank = ref.uint8(np.full(ref.card.sample.shape, ref.card.sample.value_range[0], np.float32))
    tiles = [blank] * (k * per_row)
    for c in range(k):
        for j, tile in enumerate(ref.uint8(want.samples[want.labels == c])):
            tiles[c * per_row + j] = tile
    assert np.array_equal(got.samples, np.stack(tiles)), f"grid differs from the reference; {where}"


@contextmanager
def path_forced(kind: str):
    """`loop`: small requests on the event loop, batched; `inline`: a lone client's graph runs on the
    loop; `thread`: every request in a worker thread (as large and filtered ones go)."""
    from service.core import requests
    from service.http import routes
    from service.runtime.batching import SoleClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(routes, "SOLE_CLIENT", SoleClient(quiet_s=0.0 if kind == "inline" else math.inf))
        if kind == "thread":
            mp.setattr(requests, "LOOP_MAX_VALUES", 0)
        yield


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["loop", "inline", "thread"])
def test_sample_on_every_path_is_the_reference(client, refs, model, kind):
    @DOOR_SETTINGS
    @given(body=request_bodies(model, refs))
    def check(body):
        want = refs[model].sample(body)
        with path_forced(kind):
            r = client.post("/sample", json=body)
            if kind == "inline":  # the first request of a new client is batched; the next is alone
                r = client.post("/sample", json=body)
        assert_same(refs[model], body, answer_of(refs[model], body, r), want, door=f"/sample {kind}")

    check()


def as_query(body: dict) -> dict:
    """A /sample body as GET /sample's query: scalars as text, a list of labels comma-joined."""
    out = {}
    for key, value in body.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = ",".join(map(str, value))
        else:
            out[key] = str(value)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_get_sample_is_the_reference(client, refs, model):
    """GET /sample (the cacheable door, http/caching.py): the request's scalar fields as a query."""
    from hypothesis import assume

    @DOOR_SETTINGS
    @given(body=request_bodies(model, refs))
    def check(body):
        assume(not {"latents", "w", "mix", "edit"} & set(body))
        want = refs[model].sample(body)
        r = client.get("/sample", params=as_query(body))
        assert_same(refs[model], body, answer_of(refs[model], body, r), want, door="GET /sample")

    check()


@pytest.mark.parametrize("model", MODELS)
def test_interpolate_is_the_reference(client, refs, model):
    card = refs[model].card

    @DOOR_SETTINGS
    @given(
        seeds=st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=2),
        steps=st.integers(2, 12),
        method=st.sampled_from(["slerp", "lerp"]),
        truncation=st.one_of(st.none(), st.sampled_from([0.3, 0.6, 1.0, 2.0])),
        fmt=st.sampled_from(["json", "npy", "png"] if card.sample.kind == "image" else ["json", "npy"]),
        label=st.one_of(st.none(), st.integers(0, (card.condition.classes - 1) if card.condition else 0)),
    )
    def check(seeds, steps, method, truncation, fmt, label):
        body = {"model": model, "seeds": seeds, "steps": steps, "method": method, "format": fmt}
        if truncation is not None:  # a style-based model truncates in w: psi from the same draw
            body["truncation_psi" if card.style else "truncation"] = truncation / 2 if card.style else truncation
        if label is not None and card.condition is not None:
            body["labels"] = label
        if fmt == "json":
            body["scores"] = True
        want = refs[model].interpolate(body)
        got = answer_of(refs[model], body, client.post("/interpolate", json=body))
        assert_same(refs[model], body, got, want, path="/interpolate", door="/interpolate")

    check()


@pytest.mark.parametrize("model", MODELS)
def test_v2_infer_is_the_reference(client, refs, model):
    ref = refs[model]

    @DOOR_SETTINGS
    @given(seed=st.integers(0, 2**64 - 1), n=st.integers(1, 16), truncation=st.one_of(st.none(), st.just(0.6)))
    def check(seed, n, truncation):
        z = ref.latents(seed, n, truncation)  # v2 takes latents: a z truncated for any model
        c = ref.classes(None, n, seed)
        inputs = [{"name": "z", "shape": list(z.shape), "datatype": "FP32", "data": z.reshape(-1).tolist()}]
        if c is not None:
            inputs.append({"name": ref.card.condition.input, "shape": [n], "datatype": "INT64", "data": c.tolist()})
        if ref.style is not None:  # mapping, then synthesis on w broadcast to every layer (docs/API.md)
            w = infer(f"{model}.mapping", inputs)
            ws = ref.broadcast(w)
            name = ref.card.onnx.synthesis.inputs[0].name
            got = infer(
                f"{model}.synthesis",
                [{"name": name, "shape": list(ws.shape), "datatype": "FP32", "data": ws.reshape(-1).tolist()}],
            )
        else:
            got = infer(f"{model}.generator", inputs)
        assert np.array_equal(got, ref.generate(z, c)), f"/v2 infer differs for seed {seed}, n {n}"

    def infer(name: str, inputs: list) -> np.ndarray:
        r = client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        return np.asarray(out["data"], np.float32).reshape(out["shape"])

    check()


def test_streamed_json_is_the_reference(client, refs, monkeypatch):
    """A json answer large enough to stream (forced small here) holds the reference's samples."""
    from service.http import handlers

    monkeypatch.setattr(handlers, "STREAM_MIN_VALUES", 0)
    body = {"model": DEFAULT, "n": 40, "seed": 11, "truncation": 1.0, "scores": True}
    with path_forced("thread"):  # only a worker thread's answer streams
        r = client.post("/sample", json=body)
    assert "content-length" not in r.headers  # chunked: it streamed
    assert_same(refs[DEFAULT], body, answer_of(refs[DEFAULT], body, r), refs[DEFAULT].sample(body), door="stream")


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/interpolate", {"seeds": [1, 2], "dtype": "uint8"}, "dtype"),
        ("/interpolate", {"seeds": [1, 2], "drs": True}, "drs"),
        ("/interpolate", {"seeds": [1, 2], "min_realness": 0.5}, "min_realness"),
        ("/sample", {"model": RING, "format": "png"}, "format"),
        ("/sample", {"model": RING, "dtype": "uint8"}, "dtype"),
        ("/sample", {"latents": [[0.0] * 8], "truncation": 1.0}, "truncation"),
        ("/interpolate", {"latents": [[0.0] * 8, [1.0] * 8], "truncation": 1.0}, "truncation"),
        ("/sample", {"format": "npy", "scores": True}, "scores"),
        ("/sample", {"model": RING, "labels": 1}, "labels"),
    ],
)
def test_options_a_door_does_not_support_are_refused_naming_them(client, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code == 400 and r.json()["error"].startswith(f"{field}"), f"{r.text}\n{curl(path, body)}"


# --- over a real server -------------------------------------------------------------------------


@pytest.mark.slow
def test_the_python_client_and_bentomls_client_are_the_reference(real_server, refs):
    import bentoml

    from service.client import Client

    cases = [
        {"model": DEFAULT, "n": 5, "seed": 3, "truncation": 0.6},
        {"model": DEFAULT, "n": 9, "seed": 2**63, "truncation": 2.0, "dtype": "uint8"},
        {"model": COND, "n": 6, "seed": 8, "labels": "balanced"},
        {"model": RING, "n": 4, "seed": 12, "truncation": 1.0},
    ]
    with Client(real_server, token=TOKEN) as ours, bentoml.SyncHTTPClient(real_server, token=TOKEN) as theirs:
        for body in cases:
            ref, want = refs[body["model"]], refs[body["model"]].sample(body)
            fields = {k: v for k, v in body.items() if k not in ("model", "n", "seed", "truncation")}
            got = ours.sample(
                body["n"], model=body["model"], seed=body["seed"], truncation=body.get("truncation"), **fields
            )
            expected = ref.uint8(want.samples) if body.get("dtype") == "uint8" else want.samples
            assert np.array_equal(got.samples, expected), f"Python client; {curl('/sample', body, real_server)}"
            raw = theirs.sample(**{**body, "format": "npy"})
            assert np.array_equal(np.load(io.BytesIO(raw), allow_pickle=False), expected), (
                f"BentoML's client; {curl('/sample', body, real_server)}"
            )


def dataset_reference(
    ref: Reference, samples: int, shard_size: int, block_size: int, seed: int, truncation, field: str = "truncation"
):
    """The rows of a dataset from its definition (docs/DATASETS.md): shard i's seed is
    SeedSequence(seed, spawn_key=(i,)), block b's is the same of the shard's seed, and each block is one
    /sample request (n = its size, seed = its seed, and the truncation `field`)."""

    def child(s: int, i: int) -> int:
        return int(np.random.SeedSequence(s, spawn_key=(i,)).generate_state(1, np.uint64)[0])

    shards = []
    for i in range(math.ceil(samples / shard_size)):
        want, rows = min(shard_size, samples - i * shard_size), []
        for b, start in enumerate(range(0, want, block_size)):
            body = {"seed": child(child(seed, i), b), "n": min(block_size, want - start), field: truncation}
            rows.append(ref.sample(body).samples)
        shards.append(np.concatenate(rows))
    return shards


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "http"])
def test_dataset_shards_are_the_reference(where, real_server, refs, service_models_dir, tmp_path, capsys):
    from tests.service.datasets.support import manifest, run_generate

    spec = ["--samples", 23, "--shard-size", 10, "--block-size", 4, "--seed", 77, "--truncation", 0.6]
    source = (
        ["--model-dir", service_models_dir / DEFAULT, "--threads", 1]
        if where == "local"
        else ["--url", real_server, "--model", DEFAULT, "--token", TOKEN]
    )
    code, printed = run_generate(capsys, *source, "--out", tmp_path / "d", *spec)
    assert code == 0, printed
    m = manifest(tmp_path / "d")
    want = dataset_reference(refs[DEFAULT], 23, 10, 4, 77, 0.6)
    got = [np.load(tmp_path / "d" / s["data"]["file"], allow_pickle=False) for s in m["shards"]]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(g, w), f"{where} shard {i} differs from the reference (truncation 0.6)"


def test_a_style_based_models_dataset_in_w_is_the_reference(refs, service_models_dir, tmp_path, capsys):
    """--truncation-psi: every block is /sample with that truncation_psi, from a local folder."""
    from tests.service.datasets.support import manifest, run_generate

    spec = ["--samples", 11, "--shard-size", 6, "--block-size", 4, "--seed", 5, "--truncation-psi", 0.7]
    code, printed = run_generate(
        capsys, "--model-dir", service_models_dir / STYLE, "--threads", 1, "--out", tmp_path / "d", *spec
    )
    assert code == 0, printed
    m = manifest(tmp_path / "d")
    want = dataset_reference(refs[STYLE], 11, 6, 4, 5, 0.7, field="truncation_psi")
    got = [np.load(tmp_path / "d" / s["data"]["file"], allow_pickle=False) for s in m["shards"]]
    assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
    refused = run_generate(capsys, "--model-dir", service_models_dir / DEFAULT, "--out", tmp_path / "e", *spec)
    assert refused[0] == 2 and "--truncation-psi" in refused[1]


# --- the shipped model kinds: the paper's MLP, its conditional form, a DCGAN on RGB, a vector GAN ---

SHIPPED = ("mnist", "mnist-cond", "patches", "ring8")


@pytest.fixture(scope="module")
def shipped(app):  # app: the test settings before the request schemas are imported
    from service.runtime.engine import Engine

    repo = Path(__file__).resolve().parents[2] / "models"
    engine = Engine(repo, device="cpu", default_model="mnist")
    yield engine, {name: Reference(repo / name) for name in SHIPPED}
    engine.executor.shutdown(wait=False)


async def _sent(answering):
    """The answer of `answering` with its body as a server would send it: a large npy answer is a
    stream of blocks (core/streaming.py), computed as it is taken, on the loop that made it."""
    answer = await answering
    if hasattr(answer, "body"):
        return answer
    body = b"".join([bytes(chunk) async for chunk in answer.body_iterator])
    return SimpleNamespace(body=body, headers=answer.headers)


@pytest.mark.parametrize("model", SHIPPED)
def test_every_shipped_model_kind_answers_the_reference_on_the_loop_and_in_a_thread(shipped, model):
    """The same handlers the routes call, on the shipped folders (a (100, 1, 1) DCGAN latent, RGB
    grids, ten classes), outside HTTP: the event loop's path and the worker thread's."""
    import asyncio

    from service.core.schemas import InterpolateRequest, SampleRequest
    from service.http import handlers

    engine, refs = shipped
    ref = refs[model]

    @DOOR_SETTINGS
    @given(body=request_bodies(model, refs), steps=st.integers(2, 6))
    def check(body, steps):
        body = {k: v for k, v in body.items() if k != "model"} | {"model": model}
        want = ref.sample(body)
        req = SampleRequest.model_validate(body)
        for door, answer in (
            ("loop", asyncio.run(_sent(handlers.sample_async(engine, req, 20)))),
            ("thread", handlers.sample(engine, req, 20)),
        ):
            got = answer_of(ref, body, httpx.Response(200, content=answer.body, headers=answer.headers))
            assert_same(ref, body, got, want, door=f"{door} ({model})")
        if "seed" in body:
            walk = {"model": model, "seeds": [body["seed"], body["seed"] ^ 1], "steps": steps, "format": "npy"}
            walk |= {k: body[k] for k in ("truncation",) if k in body}
            answer = handlers.interpolate(engine, InterpolateRequest.model_validate(walk))
            got = answer_of(ref, walk, httpx.Response(200, content=answer.body, headers=answer.headers))
            assert_same(ref, walk, got, ref.interpolate(walk), path="/interpolate", door=f"interpolate ({model})")

    check()


# OpenVINO runs the same graphs with other kernels: its samples agree within float tolerance, not to
# the bit (docs/DESIGN.md, "Two CPU engines"): samples within test_backends.py's tolerance, D's logits
# (sums over more terms) within 1e-3.
OPENVINO_RTOL, OPENVINO_ATOL = 1e-4, 1e-5


@pytest.mark.parametrize("model", SHIPPED)
def test_the_openvino_engine_answers_the_reference_within_tolerance(shipped, model):
    from service.core.schemas import SampleRequest
    from service.http import handlers
    from service.runtime import backends
    from service.runtime.engine import Engine

    if not backends.openvino_available():
        pytest.skip("the OpenVINO runtime is not installed (the dev extra installs it)")
    _, refs = shipped
    engine = Engine(Path(__file__).resolve().parents[2] / "models", device="cpu", only=model, backend="openvino")
    try:
        for body in ({"seed": 5, "n": 6}, {"seed": 2**63, "n": 3, "truncation": 1.0, "scores": True}):
            body = {"model": model, "format": "json", **body}
            want = refs[model].sample(body)
            answer = handlers.sample(engine, SampleRequest.model_validate(body), 20)
            got = answer_of(refs[model], body, httpx.Response(200, content=answer.body, headers=answer.headers))
            where = curl("/sample", body) + " (GANSERVE_BACKEND=openvino)"
            np.testing.assert_allclose(got.samples, want.samples, rtol=OPENVINO_RTOL, atol=OPENVINO_ATOL, err_msg=where)
            if want.logits is not None:
                np.testing.assert_allclose(got.logits, want.logits, rtol=1e-3, atol=1e-3, err_msg=where)
            if want.labels is not None:
                assert np.array_equal(got.labels, want.labels), where
    finally:
        engine.executor.shutdown(wait=False)


def test_an_edited_dataset_is_its_edited_sample_blocks(client, service_models_dir, tmp_path, capsys):
    """--edit: every block is /sample with that edit (here over the in-process API for the blocks),
    from a local folder; an unknown direction is refused before anything is written."""
    from tests.service.datasets.support import manifest, run_generate

    spec = ["--samples", 9, "--shard-size", 9, "--block-size", 4, "--seed", 3, "--edit", "pc1:1.5,pc0:-0.5"]
    code, printed = run_generate(
        capsys, "--model-dir", service_models_dir / COND, "--threads", 1, "--out", tmp_path / "d", *spec
    )
    assert code == 0, printed
    m = manifest(tmp_path / "d")
    got = np.load(tmp_path / "d" / m["shards"][0]["data"]["file"], allow_pickle=False)
    labels = (
        np.load(tmp_path / "d" / m["shards"][0]["labels"]["file"], allow_pickle=False)
        if "labels" in m["shards"][0]
        else None
    )

    def child(s: int, i: int) -> int:
        return int(np.random.SeedSequence(s, spawn_key=(i,)).generate_state(1, np.uint64)[0])

    rows = []
    for b, start in enumerate(range(0, 9, 4)):
        n = min(4, 9 - start)
        body = {
            "model": COND,
            "n": n,
            "seed": child(child(3, 0), b),
            "format": "npy",
            "edit": [{"direction": "pc1", "amount": 1.5}, {"direction": "pc0", "amount": -0.5}],
        }
        if labels is not None:
            body["labels"] = labels[start : start + n].tolist()
        r = client.post("/sample", json=body)
        assert r.status_code == 200, r.text
        rows.append(np.load(io.BytesIO(r.content), allow_pickle=False))
    assert np.array_equal(got, np.concatenate(rows))
    refused = run_generate(
        capsys, "--model-dir", service_models_dir / COND, "--out", tmp_path / "e", "--samples", 4, "--edit", "nope:1"
    )
    assert refused[0] == 2 and "--edit: 'nope'" in refused[1]
