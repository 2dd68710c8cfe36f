"""Card schema version 3: style-based models (mapping.onnx and synthesis.onnx with w_avg.npy in
place of generator.onnx). Single-graph cards stay version 2 and are refused a style section."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from models.card import CARD_FILE, CardError, ModelCard, load_model_folder
from tests.style_factory import pack_into

W_DIM, NUM_WS = 16, 3


@pytest.fixture(scope="module")
def style_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("v3")
    return pack_into(root / "models", "foreign", root / "graphs")


def card_data(folder: Path) -> dict:
    return json.loads((folder / CARD_FILE).read_text())


def test_a_packed_style_based_folder_loads_as_version_3(style_folder):
    card, paths = load_model_folder(style_folder)
    assert card.schema_version == 3 and card.is_style
    assert card.roles == ["mapping", "synthesis", "discriminator"] == list(paths)
    assert (card.style.w_dim, card.style.num_ws) == (W_DIM, NUM_WS)
    assert card.sampling_roles == ("mapping", "synthesis")
    assert len(card.generator_sha256) == 64 and card.version == card.generator_sha256[:12]


def edited(style_folder: Path, change) -> dict:
    data = copy.deepcopy(card_data(style_folder))
    change(data)
    return data


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda d: d.update(schema_version=2), "style: given exactly when schema_version is 3"),
        (lambda d: d.pop("style"), "style: given exactly when schema_version is 3"),
        (lambda d: d["files"].pop("synthesis"), "files: missing the synthesis entry"),
        (lambda d: d["files"].update(generator=d["files"]["mapping"] | {"name": "generator.onnx"}), "files.generator"),
        (lambda d: d["style"].update(num_ws=4), "onnx.synthesis"),
        (lambda d: d["style"].update(w_dim=8), "onnx.mapping"),
        (lambda d: d["style"]["w_avg"].update(name="w.npy"), "must be named w_avg.npy"),
    ],
)
def test_inconsistent_style_cards_are_refused(style_folder, change, problem):
    with pytest.raises(ValueError, match=problem.replace(".", r"\.")):
        ModelCard.model_validate(edited(style_folder, change))


def test_a_changed_w_avg_is_caught_by_its_checksum(style_folder, tmp_path):
    import shutil

    folder = tmp_path / style_folder.name
    shutil.copytree(style_folder, folder)
    np.save(folder / "w_avg.npy", np.zeros(W_DIM, np.float32), allow_pickle=False)
    with pytest.raises(CardError, match="w_avg.npy: sha256 does not match"):
        load_model_folder(folder)
    (folder / "w_avg.npy").unlink()
    with pytest.raises(CardError, match="w_avg.npy: missing"):
        load_model_folder(folder)
