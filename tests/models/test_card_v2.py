"""Card schema version 2: conditional models, optional discriminator and training record, packed
models, declared latent shapes; and version 1 cards (every shipped folder) still read unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.card import CARD_FILE, CardError, Condition, Latent, ModelCard, load_model_folder, read_card, write_card

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (REPO / "models").iterdir() if (p / CARD_FILE).is_file())


def _v1_card() -> dict:
    """A version 1 card exactly as the exporter wrote it before version 2 (a stored copy of the
    shipped ring8 card as of schema 1), so the test does not depend on what models/ holds now."""
    return json.loads((Path(__file__).parent / "fixtures" / "card_v1.json").read_text())


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_folders_load(folder: Path) -> None:
    card, paths = load_model_folder(folder)
    assert card.name == folder.name and card.schema_version in (1, 2)
    assert set(paths) == set(card.roles) and "generator" in paths


def test_version_1_card_reads_unchanged(tmp_path: Path) -> None:
    data = _v1_card()
    card = ModelCard.model_validate(data)
    assert card.schema_version == 1 and card.has_discriminator and card.condition is None
    assert card.roles == ["generator", "discriminator"]
    # Written back, a version 1 card stays version 1: the same keys and values, and no version 2
    # key an older reader would refuse.
    folder = tmp_path / card.name
    folder.mkdir()
    write_card(folder, card)
    assert json.loads((folder / CARD_FILE).read_text()) == data


@pytest.mark.parametrize("drop", ["discriminator", "training"])
def test_version_1_still_needs_both_graphs_and_training(drop: str) -> None:
    data = _v1_card()
    if drop == "discriminator":
        del data["files"]["discriminator"], data["onnx"]["discriminator"], data["realness"]
    else:
        del data["training"]
    with pytest.raises(ValueError, match=f"schema_version 1 needs {drop}"):
        ModelCard.model_validate(data)


def _v2_generator_only() -> dict:
    data = _v1_card()
    data["schema_version"] = 2
    del data["files"]["discriminator"], data["onnx"]["discriminator"], data["realness"], data["training"]
    data["source"] = {
        "kind": "onnx",
        "files": {"generator": {"path": "/tmp/G.onnx", "sha256": "0" * 64, "bytes": 10}},
        "declarations": {"latent_dim": 2},
        "tool": "ganserve pack 0.1.0",
    }
    return data


def test_version_2_generator_only_with_source() -> None:
    card = ModelCard.model_validate(_v2_generator_only())
    assert not card.has_discriminator and card.roles == ["generator"]
    assert card.training is None and card.source.kind == "onnx"
    with pytest.raises(LookupError, match="has no discriminator"):
        card.expected_signature("discriminator")


def test_version_2_needs_training_or_source() -> None:
    data = _v2_generator_only()
    del data["source"]
    with pytest.raises(ValueError, match="training or source"):
        ModelCard.model_validate(data)


def test_discriminator_parts_go_together() -> None:
    data = _v2_generator_only()
    data["realness"] = {"max_logit": 1.0, "measured_on": 10}
    with pytest.raises(ValueError, match="realness: must be given exactly when there is a discriminator"):
        ModelCard.model_validate(data)


def test_conditional_inputs_checked_against_the_condition() -> None:
    data = _v1_card()
    data["schema_version"] = 2
    c = {"name": "c", "dtype": "int64", "shape": ["batch"]}
    data["onnx"]["generator"]["inputs"].append(c)
    with pytest.raises(ValueError, match="inputs beyond the first need a condition"):
        ModelCard.model_validate(data)
    data["condition"] = {"classes": 8, "names": [f"mode{i}" for i in range(8)]}
    with pytest.raises(ValueError, match="onnx.discriminator: a conditional graph takes 'c' int64"):
        ModelCard.model_validate(data)
    data["onnx"]["discriminator"]["inputs"].append(c)
    card = ModelCard.model_validate(data)
    assert card.condition.classes == 8
    data["onnx"]["discriminator"]["inputs"][1] = {**c, "dtype": "float32"}
    with pytest.raises(ValueError, match="int64"):
        ModelCard.model_validate(data)


def test_condition_resolves_indices_and_names() -> None:
    cond = Condition(classes=3, names=["zero", "one", "two"])
    assert [cond.index(x) for x in (0, 2, "one")] == [0, 2, 1]
    with pytest.raises(ValueError, match=r"class 3 is out of range \[0, 3\)"):
        cond.index(3)
    with pytest.raises(ValueError, match="unknown class name 'seven'; classes: zero, one, two"):
        cond.index("seven")
    with pytest.raises(ValueError, match="neither an index nor a name"):
        cond.index(True)
    with pytest.raises(ValueError, match="names: 2 names for 3 classes"):
        Condition(classes=3, names=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        Condition(classes=2, names=["a", "a"])


def test_latent_shape_is_declared_and_must_hold_dim() -> None:
    assert Latent(dim=100, distribution="normal", shape=[100, 1, 1]).graph_shape == [100, 1, 1]
    assert Latent(dim=100, distribution="normal").graph_shape == [100]
    with pytest.raises(ValueError, match=r"shape \[10, 2\] does not hold dim 100"):
        Latent(dim=100, distribution="normal", shape=[10, 2])


def test_new_fields_refused_in_version_1(tmp_path: Path) -> None:
    data = _v1_card()
    data["latent"]["shape"] = [data["latent"]["dim"]]
    folder = tmp_path / data["name"]
    folder.mkdir()
    (folder / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(CardError, match="need schema_version 2"):
        read_card(folder)


def test_a_calibrated_discriminators_record_needs_version_2() -> None:
    data = _v1_card()
    data["realness"]["drs_gamma"] = 0.0
    with pytest.raises(ValueError, match="realness: a calibrated discriminator's record needs schema_version 2"):
        ModelCard.model_validate(data)
    data["schema_version"] = 2
    assert ModelCard.model_validate(data).realness.drs_gamma == 0.0


def _calibrated_with_training_ratio() -> dict:
    """A version 2 card whose D serves a calibrated logit and keeps the training D as ratio.onnx for DRS."""
    data = _v1_card()
    data["schema_version"] = 2
    data["files"]["ratio"] = {**data["files"]["discriminator"], "name": "ratio.onnx"}
    data["onnx"]["ratio"] = json.loads(json.dumps(data["onnx"]["discriminator"]))
    data["realness"].update(
        discriminator="calibrated",
        drs_ratio="training",
        calibration={
            "method": "test",
            "started_from": "training",
            "steps": 1,
            "held_out": "test",
            "auc": 0.9,
            "ece": 0.05,
            "reliability": [],
            "distributions": {},
        },
    )
    return data


def test_drs_by_the_training_ratio_needs_ratio_onnx_and_a_calibrated_d(tmp_path: Path) -> None:
    data = _calibrated_with_training_ratio()
    card = ModelCard.model_validate(data)
    assert card.drs_role == "ratio" and card.roles == ["generator", "discriminator", "ratio"]
    folder = tmp_path / card.name
    folder.mkdir()
    write_card(folder, card)
    written = json.loads((folder / CARD_FILE).read_text())
    assert written["realness"]["drs_ratio"] == "training" and written["files"]["ratio"]["name"] == "ratio.onnx"

    def refused(change, match: str) -> None:
        changed = json.loads(json.dumps(data))
        change(changed)
        with pytest.raises(ValueError, match=match):
            ModelCard.model_validate(changed)

    refused(lambda d: d["files"].pop("ratio"), "onnx.ratio: must be given exactly when files has a ratio")
    refused(lambda d: (d["files"].pop("ratio"), d["onnx"].pop("ratio")), "files.ratio: ratio.onnx .* exactly when")
    refused(lambda d: d["realness"].update(drs_ratio="served"), "files.ratio: ratio.onnx .* exactly when")
    refused(lambda d: d["files"]["ratio"].update(name="drs.onnx"), "files.ratio: must be named ratio.onnx")
    refused(
        lambda d: d["onnx"]["ratio"]["inputs"][0].update(name="image"),
        "onnx.ratio: must take the discriminator's inputs",
    )
    refused(
        lambda d: d["realness"].update(discriminator="training", calibration=None),
        "only beside a calibrated discriminator",
    )
    # An earlier form (the ratio as discriminator.onnx's second output, one session) is refused by name.
    refused(
        lambda d: (
            d["files"].pop("ratio"),
            d["onnx"].pop("ratio"),
            d["onnx"]["discriminator"]["outputs"].append(
                {**d["onnx"]["discriminator"]["outputs"][0], "name": "drs_logit"}
            ),
        ),
        "files.ratio: ratio.onnx",
    )


def test_the_served_ratio_is_the_default_and_cards_keep_their_keys(tmp_path: Path) -> None:
    card = ModelCard.model_validate(_v1_card())
    assert card.realness.drs_ratio == "served" and card.drs_role == "discriminator" and "ratio" not in card.roles
    for folder in SHIPPED:  # written back, a card that serves D's own ratio does not gain the key
        data = json.loads((folder / CARD_FILE).read_text())
        if data["realness"].get("drs_ratio", "served") != "served":
            continue
        out = tmp_path / folder.name
        out.mkdir()
        write_card(out, ModelCard.model_validate(data))
        assert "drs_ratio" not in json.loads((out / CARD_FILE).read_text())["realness"]
