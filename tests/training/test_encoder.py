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
    assert main(["encoder", str(folder), "--steps", "400", "--pool", "3000", "--quiet"]) == 0
    card = json.loads((folder / "model.json").read_text())
    assert set(card["files"]) == set(before["files"]) | {"encoder"}
    assert card["onnx"]["encoder"]["outputs"][0]["shape"] == ["batch", 8]
    latent, recon = card["metrics"]["encoder_latent_mse"], card["metrics"]["encoder_reconstruction_mse"]
    # E does better than knowing nothing: below the unrelated pairs' error (ring8's 8 modes are far apart)
    assert recon["value"] < 0.5 * recon["details"]["unrelated_samples_mse"]
    assert np.isfinite(latent["value"])
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
