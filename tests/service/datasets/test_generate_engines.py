"""`generate --backend`: the dataset manifest records the engine that ran each shard's graphs, since
onnxruntime and OpenVINO agree within float tolerance but not to the byte; the default stays
onnxruntime, so a dataset made without the option is byte-identical across hosts and to a server
pinned to it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.__main__ import main
from service.runtime import backends

ORT = "onnxruntime/CPUExecutionProvider"


def _generate(capsys, models: Path, out: Path, *extra: str) -> str:
    code = main(
        [
            "generate",
            "--quiet",
            "--model-dir",
            str(models / "tiny-digits"),
            "--threads",
            "1",
            "--out",
            str(out),
            "--samples",
            "60",
            "--shard-size",
            "30",
            "--block-size",
            "16",
            "--seed",
            "4",
            "--realness",
            *extra,
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    return printed.out + printed.err


def _data(folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    manifest = json.loads((folder / "manifest.json").read_text())
    x = np.concatenate([np.load(folder / s["data"]["file"], allow_pickle=False) for s in manifest["shards"]])
    r = np.concatenate([np.load(folder / s["realness"]["file"], allow_pickle=False) for s in manifest["shards"]])
    return x, r, manifest


def test_the_default_engine_is_onnxruntime_and_every_shard_says_so(tiny_models_dir, tmp_path, capsys):
    _generate(capsys, tiny_models_dir, tmp_path / "a")
    _, _, manifest = _data(tmp_path / "a")
    assert [s["engine"] for s in manifest["shards"]] == [ORT, ORT]
    assert manifest["totals"]["engines"] == [ORT]


@pytest.mark.skipif(not backends.openvino_available(), reason="the OpenVINO runtime is not installed")
def test_openvino_makes_the_same_dataset_within_float_tolerance_and_is_recorded(tiny_models_dir, tmp_path, capsys):
    _generate(capsys, tiny_models_dir, tmp_path / "ort")
    _generate(capsys, tiny_models_dir, tmp_path / "ov", "--backend", "openvino")
    x_ort, r_ort, _ = _data(tmp_path / "ort")
    x_ov, r_ov, manifest = _data(tmp_path / "ov")
    assert manifest["totals"]["engines"] == ["openvino/" + backends.OPENVINO_CPU]
    assert x_ov.shape == x_ort.shape and x_ov.dtype == x_ort.dtype == np.float32
    np.testing.assert_allclose(x_ov, x_ort, rtol=1e-4, atol=1e-5)  # same latents, same graph: same samples
    np.testing.assert_allclose(r_ov, r_ort, rtol=1e-4, atol=1e-4)
    # Resuming the openvino dataset with the default engine verifies its shards (files and sha256s,
    # whoever made them) rather than remaking them: the record of who made them stays.
    _generate(capsys, tiny_models_dir, tmp_path / "ov")
    assert _data(tmp_path / "ov")[2]["totals"]["engines"] == ["openvino/" + backends.OPENVINO_CPU]


def test_drs_without_a_gamma_uses_the_cards_as_sample_does_and_records_it(tiny_model_copy, tmp_path, capsys):
    """`generate --drs` filters as `POST /sample {"drs": true}` does: with the card's gamma."""
    folder = tiny_model_copy("tiny-digits")
    card = json.loads((folder / "model.json").read_text())
    card["realness"]["drs_gamma"] = -2.5
    (folder / "model.json").write_text(json.dumps(card))
    models = folder.parent

    def run(out: str, *extra: str) -> dict:
        _generate(capsys, models, tmp_path / out, "--drs", *extra)
        return _data(tmp_path / out)

    x_card, _, m_card = run("card")
    x_same, _, _ = run("explicit", "--drs-gamma", "-2.5")
    x_strict, _, m_strict = run("strict", "--drs-gamma", "4")
    assert m_card["spec"]["filter"]["drs_gamma"] == -2.5 and m_strict["spec"]["filter"]["drs_gamma"] == 4.0
    assert np.array_equal(x_card, x_same) and not np.array_equal(x_card[:10], x_strict[:10])
    # A higher gamma accepts less (above 1/2 the rate reads 0.5: the first round draws 2n).
    assert m_card["totals"]["acceptance"] > m_strict["totals"]["acceptance"]
