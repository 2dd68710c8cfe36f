"""`python -m training directions` on the shipped mnist: principal directions, and class
directions that move the project's classifier's decision toward their class as the amount grows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.__main__ import main

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    yield


def test_class_directions_move_the_classifiers_decision(tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(REPO_MODELS / "mnist", folder)
    assert main(["directions", str(folder), "--principal", "4", "--samples", "3000"]) == 0
    data = json.loads((folder / "directions.json").read_text())
    names = [d["name"] for d in data["directions"]]
    assert names[:4] == ["pc0", "pc1", "pc2", "pc3"] and names[4:] == [f"class:{k}" for k in range(10)]
    assert data["space"] == "z" and all(abs(np.linalg.norm(d["vector"]) - 1) < 1e-5 for d in data["directions"])
    from models.card import load_model_folder
    from training.encoder.pairs import FolderGraphs
    from training.evaluation.classifier import load_classifier

    card, _ = load_model_folder(folder)  # the card names the file and its checksum holds
    assert card.directions.name == "directions.json"
    graphs, clf = FolderGraphs(folder, threads=1), load_classifier("mnist5k")
    z = graphs.draw_z(np.random.default_rng(11), 200)
    vectors = {d["name"]: np.asarray(d["vector"], np.float32) for d in data["directions"]}
    for k in (0, 3, 7):
        shares = []
        for amount in (0.0, 2.0, 4.0):
            moved = np.clip(z + amount * vectors[f"class:{k}"], card.latent.low, card.latent.high).astype(np.float32)
            shares.append(
                float((clf.features_and_probs(graphs.draw_from_latent(moved, None))[1].argmax(1) == k).mean())
            )
        assert shares[0] < shares[1] < shares[2] and shares[2] > 0.6, (k, shares)

    # The figure of docs/RESULTS.md: its middle column is the seed's own sample in every row.
    from training.directions.figures import direction_grid
    from training.directions.figures import main as figure

    tiles = direction_grid(folder, ["pc0", "class:7"], np.linspace(-2, 2, 5), seed=1)
    assert tiles.shape == (10, 1, 28, 28) and np.array_equal(tiles[2], tiles[7])
    assert figure([str(folder), "--out", str(tmp_path / "d.png"), "--directions", "pc0,class:3"]) == 0
    assert (tmp_path / "d.png").stat().st_size > 0


def test_bad_options_are_named(tmp_path, capsys):
    assert main(["directions", str(tmp_path), "--principal", "0"]) == 2
    assert "--principal" in capsys.readouterr().err
    assert main(["directions", str(tmp_path / "absent")]) == 2
    assert "model.json" in capsys.readouterr().err
