"""`python -m training project`: latents optimised through G in torch from E's guess (or the best
random start), never answering worse than the start; inputs of the wrong kind refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.__main__ import main
from training.data import load_dataset

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    yield


@pytest.fixture(scope="module")
def held_digits(tmp_path_factory) -> Path:
    """Six held-out mnist5k digits (the test split: neither G nor E saw them) as one .npy."""
    path = tmp_path_factory.mktemp("digits") / "held.npy"
    np.save(path, load_dataset("mnist5k", "test").x.numpy()[:6])
    return path


def test_projection_from_the_encoder_lowers_every_error_and_writes_its_record(tmp_path, held_digits, capsys):
    out = tmp_path / "out"
    assert (
        main(["project", str(MODELS / "mnist"), str(held_digits), "--out", str(out), "--steps", "40", "--quiet"]) == 0
    )
    record = json.loads((out / "projection.json").read_text())
    assert record["started_from"] == "encoder" and record["space"] == "z"
    images = record["images"]
    assert [i["source"] for i in images] == [f"{held_digits}[{k}]" for k in range(6)]
    # Best-kept: no image ends worse than E's guess, and on the whole the loss went down.
    for im in images:
        assert im["pixel_mse"] <= im["pixel_mse_start"] + 1e-6 or im["feature_distance"] < im["feature_distance_start"]
    assert np.mean([i["feature_distance"] for i in images]) < np.mean([i["feature_distance_start"] for i in images])
    assert np.mean([i["pixel_mse"] for i in images]) < np.mean([i["pixel_mse_start"] for i in images])
    latents = np.load(out / "latents.npy", allow_pickle=False)
    card = json.loads((MODELS / "mnist" / "model.json").read_text())
    assert latents.shape == (6, 100) and np.all(np.abs(latents) <= card["latent"]["high"] + 1e-6)
    assert Image.open(out / "projection.png").size[0] > 6 * 28  # image, start and projected rows
    assert "from encoder" in capsys.readouterr().out
    # The projected latent draws what the record says: G through onnxruntime on latents.npy.
    import onnxruntime as ort

    g = ort.InferenceSession(str(MODELS / "mnist" / "generator.onnx"), providers=["CPUExecutionProvider"])
    drawn = g.run(None, {"z": latents})[0]
    x = np.load(held_digits)
    per_image = ((drawn - x) ** 2).reshape(6, -1).mean(1)
    np.testing.assert_allclose(per_image, [i["pixel_mse"] for i in images], rtol=1e-3, atol=1e-6)


def test_pngs_of_another_size_need_resize_and_say_so(tmp_path, capsys):
    digit = (load_dataset("mnist5k", "test").x.numpy()[7, 0] * 255).astype(np.uint8)
    Image.fromarray(digit).save(tmp_path / "d.png")
    Image.fromarray(digit).resize((56, 56)).save(tmp_path / "big.png")
    args = ["project", str(MODELS / "mnist"), "--out", str(tmp_path / "o"), "--steps", "2", "--quiet"]
    assert main([*args[:2], str(tmp_path / "big.png"), *args[2:]]) == 2
    err = capsys.readouterr().err
    assert "big.png: 56x56; the model takes 28x28" in err and "--resize" in err
    assert main([*args[:2], str(tmp_path / "big.png"), str(tmp_path / "d.png"), *args[2:], "--resize"]) == 0
    assert "big.png: resized from 56x56 to 28x28" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "o" / "projection.json").read_text())["images"]) == 2


def test_bad_inputs_are_named(tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 28, 28), np.float32))
    base = ["--out", str(tmp_path / "o"), "--quiet"]
    assert main(["project", str(MODELS / "mnist"), str(tmp_path / "wrong.npy"), *base]) == 2
    assert "wrong.npy: shape (2, 3, 28, 28)" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert main(["project", str(MODELS / "mnist"), str(tmp_path / "x.txt"), *base]) == 2
    assert "x.txt: expected .png" in capsys.readouterr().err
    np.save(tmp_path / "one.npy", np.zeros((1, 28, 28), np.float32))
    assert main(["project", str(MODELS / "mnist"), str(tmp_path / "one.npy"), *base, "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main(["project", str(MODELS / "mnist-cond"), str(tmp_path / "one.npy"), *base]) == 2
    assert "--class: mnist-cond is conditional" in capsys.readouterr().err
    assert main(["project", str(MODELS / "mnist"), str(tmp_path / "one.npy"), *base, "--class", "3"]) == 2
    assert "--class: mnist is not conditional" in capsys.readouterr().err
    assert not (tmp_path / "o" / "projection.json").exists()  # nothing half-written


def test_a_conditional_model_is_projected_with_its_class(tmp_path, held_digits):
    out = tmp_path / "o"
    args = ["project", str(MODELS / "mnist-cond"), str(held_digits), "--out", str(out), "--steps", "20"]
    assert main([*args, "--class", "7", "--quiet"]) == 0
    record = json.loads((out / "projection.json").read_text())
    assert record["started_from"] == "encoder"  # E takes the class beside the image
    assert np.mean([i["pixel_mse"] for i in record["images"]]) < np.mean(
        [i["pixel_mse_start"] for i in record["images"]]
    )


def test_without_an_encoder_the_best_random_latent_starts(tmp_path):
    points = load_dataset("ring8", "test").x.numpy()[:5]  # vectors: pixels are coordinates here
    np.save(tmp_path / "p.npy", points)
    out = tmp_path / "o"
    assert (
        main(["project", str(MODELS / "ring8"), str(tmp_path / "p.npy"), "--out", str(out), "--steps", "30", "--quiet"])
        == 0
    )
    record = json.loads((out / "projection.json").read_text())
    assert record["started_from"] == "random" and "feature_distance" not in record["images"][0]
    assert all(i["pixel_mse"] <= i["pixel_mse_start"] + 1e-9 for i in record["images"])
    assert not (out / "projection.png").exists()  # vectors make no image grid


def test_a_packed_style_network_is_projected_in_w(tmp_path):
    from tests.style_factory import W_DIM, pack_into

    folder = pack_into(tmp_path / "models", "foreign", tmp_path / "graphs")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o"
    args = ["project", str(folder), str(tmp_path / "x.npy"), "--out", str(out), "--steps", "30"]
    assert main([*args, "--class", "square", "--quiet"]) == 0
    record = json.loads((out / "projection.json").read_text())
    assert record["space"] == "w" and record["started_from"] == "random"
    assert np.load(out / "latents.npy").shape == (3, W_DIM)
    assert all(i["pixel_mse"] <= i["pixel_mse_start"] + 1e-6 for i in record["images"])


def test_projection_of_a_copied_folder_leaves_it_unchanged(tmp_path, held_digits):
    folder = tmp_path / "mnist"
    shutil.copytree(MODELS / "mnist", folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert (
        main(["project", str(folder), str(held_digits), "--out", str(tmp_path / "o"), "--steps", "2", "--quiet"]) == 0
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
