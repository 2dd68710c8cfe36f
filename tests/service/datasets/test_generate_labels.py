"""Labelled synthetic datasets from a conditional model: each shard's class labels beside its
samples, the label policy and per-class counts in the manifest, the same bytes on every rerun and
from the local folder or a real server (`tiny-cond`, conftest.py: classes class0..class2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.datasets.manifest import Manifest
from service.datasets.plan import DatasetSpec
from tests.service.datasets.support import files, local, manifest, run_generate
from tests.service.support import COND, TOKEN, real_server_env

SPEC = ["--samples", 70, "--shard-size", 30, "--block-size", 16, "--seed", 5]


def _rows(folder):
    m = manifest(folder)
    x = np.concatenate([np.load(folder / s["data"]["file"]) for s in m["shards"]])
    y = np.concatenate([np.load(folder / s["labels"]["file"]) for s in m["shards"]])
    return x, y, m


@pytest.mark.parametrize(
    "policy, check",
    [
        ("balanced", lambda y: np.array_equal(y, np.arange(70) % 3)),
        ("uniform", lambda y: set(y.tolist()) == {0, 1, 2}),
        ("class2:3,0", lambda y: set(y.tolist()) == {0, 2} and (y == 2).sum() > (y == 0).sum()),
    ],
)
def test_shards_store_their_labels_and_the_manifest_counts_them(service_models_dir, tmp_path, capsys, policy, check):
    out = tmp_path / "data"
    code, printed = run_generate(capsys, *local(service_models_dir, COND), "--out", out, *SPEC, "--classes", policy)
    assert code == 0, printed
    x, y, m = _rows(out)
    assert x.shape == (70, 1, 8, 8) and y.dtype == np.int64 and check(y)
    assert m["spec"]["classes"]["policy"] == {"class2:3,0": "proportions"}.get(policy, policy)
    assert m["totals"]["class_counts"] == np.bincount(y, minlength=3).tolist()
    assert [s["class_counts"] for s in m["shards"]] == [
        np.bincount(np.load(out / s["labels"]["file"]), minlength=3).tolist() for s in m["shards"]
    ]
    # The labels are the classes the rows were made with: the engine gives the same rows for them.
    from service.core import latents
    from service.datasets.plan import DatasetSpec as Spec
    from service.runtime.engine import Engine

    spec = Spec.model_validate(m["spec"])
    model = Engine.from_folder(service_models_dir / COND, device="cpu").get(COND)
    ((seed, n),) = spec.blocks(0)[:1]
    z = latents.draw(latents.generator(seed), model.card.latent, n)
    assert np.array_equal(model.generate(z, y[:n]), x[:n])
    # A rerun skips every complete shard; a fresh run writes the same bytes.
    again = tmp_path / "again"
    assert run_generate(capsys, *local(service_models_dir, COND), "--out", again, *SPEC, "--classes", policy)[0] == 0
    assert files(again) == files(out)


def test_a_conditional_model_defaults_to_uniform_labels_and_unconditional_ones_refuse_classes(
    service_models_dir, tmp_path, capsys
):
    code, _ = run_generate(capsys, *local(service_models_dir, COND), "--out", tmp_path / "d", *SPEC)
    assert code == 0 and manifest(tmp_path / "d")["spec"]["classes"]["policy"] == "uniform"
    code, printed = run_generate(
        capsys, *local(service_models_dir, "tiny-digits"), "--out", tmp_path / "u", *SPEC, "--classes", "balanced"
    )
    assert code == 2 and "--classes: the model is unconditional" in printed
    code, printed = run_generate(
        capsys, *local(service_models_dir, COND), "--out", tmp_path / "x", *SPEC, "--classes", "dog:1"
    )
    assert code == 2 and "--classes: unknown class name 'dog'" in printed
    code, printed = run_generate(
        capsys, *local(service_models_dir, COND), "--out", tmp_path / "y", *SPEC, "--classes", "1:-2"
    )
    assert code == 2 and "must be finite and > 0" in printed


def test_realness_has_its_own_name_and_labels_is_its_deprecated_alias(service_models_dir, tmp_path, capsys):
    code, printed = run_generate(
        capsys, *local(service_models_dir, COND), "--out", tmp_path / "old", *SPEC, "--labels", "--classes", "balanced"
    )
    assert code == 0 and "--labels is deprecated" in printed
    new = tmp_path / "new"
    assert (
        run_generate(
            capsys, *local(service_models_dir, COND), "--out", new, *SPEC, "--realness", "--classes", "balanced"
        )[0]
        == 0
    )
    assert files(new) == files(tmp_path / "old")
    shard = manifest(new)["shards"][0]
    assert shard["realness"]["file"].endswith(".realness.npy") and shard["labels"]["file"].endswith(".labels.npy")


def test_a_version_1_manifest_reads_its_labels_as_realness():
    spec = DatasetSpec(
        model="m", model_version="v", base_seed=0, samples=10, shard_size=10, block_size=10, realness=True
    )
    old_spec = {k: v for k, v in spec.model_dump(mode="json").items() if k not in ("realness", "classes")}
    record = {"file": "shard-00000.realness.npy", "bytes": 10, "sha256": "0" * 64}
    old = {
        "manifest_version": 1,
        "spec": {**old_spec, "labels": True},
        "model": {"name": "m", "version": "v", "generator_sha256": "a"},
        "sample": {"kind": "vector", "shape": [2], "value_range": [0, 1]},
        "shards": [
            {
                "index": 0,
                "seed": 1,
                "requested": 10,
                "count": 10,
                "drawn": 10,
                "data": {**record, "file": "shard-00000.npy"},
                "labels": record,
            }
        ],
        "totals": {"shards": 1, "complete": 1, "samples": 10, "drawn": 10, "acceptance": 1.0},
        "updated_at": "2026-11-01T00:00:00Z",
    }
    m = Manifest.model_validate(json.loads(json.dumps(old)))
    assert m.spec.realness and m.shards[0].realness.file == record["file"] and m.shards[0].labels is None


@pytest.mark.slow
def test_http_and_local_labelled_shards_are_byte_identical(service_models_dir, tmp_path, capsys):
    from tests.servers import start_server

    ref = tmp_path / "local"
    args = [*SPEC, "--classes", "class1:1,class2:2", "--realness", "--min-realness", "0.2"]
    assert run_generate(capsys, *local(service_models_dir, COND), "--out", ref, *args)[0] == 0
    root = tmp_path / "srv"
    with start_server(service_models_dir, real_server_env(service_models_dir, root), root) as running:
        out = tmp_path / "http"
        code, printed = run_generate(
            capsys, "--url", running.url, "--token", TOKEN, "--model", COND, "--out", out, *args
        )
        assert code == 0, printed
    assert files(out) == files(ref) and len(files(ref)) == 9  # 3 shards x (samples, labels, realness)
