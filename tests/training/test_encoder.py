"""`python -m training encoder`: E trained on a folder's own pairs, exported beside its graphs,
parity-checked, recorded on the card; refused where it would overwrite, the folder left whole."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from training.__main__ import main

REPO_MODELS = __import__("pathlib").Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    yield


def test_the_command_adds_a_checked_encoder_to_a_shipped_folder(tmp_path, capsys):
    folder = tmp_path / "ring8"
    shutil.copytree(REPO_MODELS / "ring8", folder)
    before = json.loads((folder / "model.json").read_text())
    assert main(["encoder", str(folder), "--steps", "400", "--pool", "3000", "--real-steps", "100", "--quiet"]) == 0
    card = json.loads((folder / "model.json").read_text())
    assert set(card["files"]) == set(before["files"]) | {"encoder"}
    assert card["onnx"]["encoder"]["outputs"][0]["shape"] == ["batch", 8]
    latent, recon = card["metrics"]["encoder_latent_mse"], card["metrics"]["encoder_reconstruction_mse"]
    # E does better than knowing nothing: below the unrelated pairs' error (ring8's 8 modes are far apart)
    assert recon["value"] < 0.5 * recon["details"]["unrelated_samples_mse"]
    assert np.isfinite(latent["value"])
    # ring8's real points through G: judged by their error alone (vectors: no feature network).
    real = card["metrics"]["encoder_real_reconstruction_mse"]
    assert real["value"] < 0.5 * recon["details"]["unrelated_samples_mse"]
    assert "encoder_real_feature_distance" not in card["metrics"]
    from models.card import load_model_folder

    load_model_folder(folder)  # the checksums hold
    # A second run is refused without --force, and leaves the folder as it was.
    assert main(["encoder", str(folder), "--steps", "10", "--quiet"]) == 2
    assert "has an encoder" in capsys.readouterr().err
    assert json.loads((folder / "model.json").read_text()) == card


def test_bad_options_and_folders_are_named(tmp_path, capsys):
    assert main(["encoder", str(tmp_path / "absent"), "--quiet"]) == 2
    assert "model.json" in capsys.readouterr().err
    assert main(["encoder", str(tmp_path), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_real_images_through_g_tune_e_and_are_judged_on_held_out_digits(tmp_path, capsys):
    folder = tmp_path / "mnist"
    shutil.copytree(REPO_MODELS / "mnist", folder)
    args = ["encoder", str(folder), "--force", "--steps", "150", "--pool", "2000", "--real-steps", "150", "--quiet"]
    assert main(args) == 0
    assert "after real images" in capsys.readouterr().out
    metrics = json.loads((folder / "model.json").read_text())["metrics"]
    pixel, feats, kept = (
        metrics["encoder_real_reconstruction_mse"],
        metrics["encoder_real_feature_distance"],
        metrics["encoder_real_class_kept"],
    )
    assert "1000 held-out real images of mnist5k" in pixel["method"]
    # The real-image phase lowers the held-out error of an E that had seen only G's pairs.
    assert pixel["value"] < pixel["details"]["pairs_only"]
    assert feats["value"] < feats["details"]["pairs_only"]
    # The references: the nearest of 4,000 training digits; the classifier on the digits themselves.
    assert 0.01 < pixel["details"]["nearest_train_image"] < 0.06
    assert kept["details"]["classifier_on_real"] > 0.95 and 0.1 < kept["value"] <= 1.0
    from models.card import load_model_folder

    load_model_folder(folder)


def test_a_folder_without_a_training_record_learns_from_pairs_alone(packed, tmp_path, capsys):
    folder = tmp_path / "tut-gonly"
    shutil.copytree(packed.models / "tut-gonly", folder)
    assert main(["encoder", str(folder), "--steps", "50", "--pool", "500", "--quiet"]) == 0
    assert "names no training data set, so E learns from G's pairs alone" in capsys.readouterr().err
    metrics = json.loads((folder / "model.json").read_text())["metrics"]
    assert "encoder_latent_mse" in metrics and "encoder_real_reconstruction_mse" not in metrics
