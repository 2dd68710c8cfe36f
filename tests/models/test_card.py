"""The card contract (models/card.py) on real exported folders: what it accepts and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.card import (
    CARD_FILE,
    CardError,
    GraphSignature,
    ModelCard,
    TensorSpec,
    check_signature,
    load_model_folder,
    read_card,
    write_card,
)


def _card_dict(folder: Path) -> dict:
    return json.loads((folder / CARD_FILE).read_text())


def _write_raw(folder: Path, data: dict) -> None:
    (folder / CARD_FILE).write_text(json.dumps(data))


def test_exported_folders_load(tiny_models_dir: Path) -> None:
    for name in ("tiny-digits", "tiny-ring"):
        card, paths = load_model_folder(tiny_models_dir / name)
        assert card.name == name
        assert set(paths) == {"generator", "discriminator"}
        assert paths["generator"].name == "generator.onnx"


def test_round_trip(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-ring")
    card = read_card(folder)
    write_card(folder, card)
    again = read_card(folder)
    assert again == card
    assert again.model_dump() == card.model_dump()
    # write_card leaves no temporary file behind.
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("model.")) == [CARD_FILE]


def test_version_is_generator_hash_prefix(tiny_models_dir: Path) -> None:
    card = read_card(tiny_models_dir / "tiny-digits")
    assert card.version == card.files["generator"].sha256[:12]


@pytest.mark.parametrize("bad_name", ["Upper", "-leading", "has space", "a" * 65, "dot.name", ""])
def test_bad_name_refused(tiny_model_copy, bad_name: str) -> None:
    folder = tiny_model_copy("tiny-digits")
    data = _card_dict(folder)
    data["name"] = bad_name
    _write_raw(folder, data)
    with pytest.raises(CardError, match=r"model\.json: name"):
        read_card(folder)


def test_uniform_latent_without_bounds_refused(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-digits")
    data = _card_dict(folder)
    data["latent"].update(distribution="uniform", low=None, high=None)
    _write_raw(folder, data)
    with pytest.raises(CardError, match="latent.*uniform latent needs finite bounds"):
        read_card(folder)


def test_normal_latent_with_bounds_refused() -> None:
    from models.card import Latent

    with pytest.raises(ValueError, match="normal latent takes no bounds"):
        Latent(dim=4, distribution="normal", low=-1.0, high=1.0)


@pytest.mark.parametrize("where", ["top", "nested"])
def test_unknown_key_refused(tiny_model_copy, where: str) -> None:
    folder = tiny_model_copy("tiny-ring")
    data = _card_dict(folder)
    (data if where == "top" else data["sample"])["colour"] = "blue"
    _write_raw(folder, data)
    with pytest.raises(CardError, match="colour"):
        read_card(folder)


def test_image_sample_needs_channels_first(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-digits")
    data = _card_dict(folder)
    data["sample"]["shape"] = [8, 8, 1]
    _write_raw(folder, data)
    with pytest.raises(CardError, match="sample"):
        read_card(folder)


def test_invalid_json_and_missing_card(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-digits")
    (folder / CARD_FILE).write_text("{not json")
    with pytest.raises(CardError, match="model.json: not valid JSON"):
        read_card(folder)
    (folder / CARD_FILE).unlink()
    with pytest.raises(CardError, match="model.json: missing"):
        load_model_folder(folder)


def test_tampered_onnx_refused_naming_the_file(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-digits")
    path = folder / "discriminator.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(CardError) as err:
        load_model_folder(folder)
    assert err.value.path == path
    assert "discriminator.onnx" in str(err.value) and "sha256" in str(err.value)


def test_missing_graph_file_refused(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-ring")
    (folder / "generator.onnx").unlink()
    with pytest.raises(CardError, match=r"generator\.onnx: missing"):
        load_model_folder(folder)


def test_size_mismatch_refused(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-ring")
    path = folder / "generator.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CardError, match=r"generator\.onnx: is \d+ bytes, the card says \d+"):
        load_model_folder(folder)


def test_folder_name_must_match_card(tiny_model_copy, tmp_path: Path) -> None:
    folder = tiny_model_copy("tiny-ring")
    renamed = folder.rename(folder.with_name("other-name"))
    with pytest.raises(CardError, match="differs from its folder"):
        load_model_folder(renamed)


def test_files_entry_must_use_the_standard_name(tiny_model_copy) -> None:
    folder = tiny_model_copy("tiny-digits")
    data = _card_dict(folder)
    data["files"]["generator"]["name"] = "g.onnx"
    _write_raw(folder, data)
    with pytest.raises(CardError, match="must be named generator.onnx"):
        read_card(folder)


def _sig(inputs: list[tuple[str, list]], outputs: list[tuple[str, list]]) -> GraphSignature:
    return GraphSignature(
        inputs=[TensorSpec(name=n, shape=s) for n, s in inputs],
        outputs=[TensorSpec(name=n, shape=s) for n, s in outputs],
    )


def test_check_signature(tiny_models_dir: Path) -> None:
    card: ModelCard = read_card(tiny_models_dir / "tiny-digits")
    expected = card.expected_signature("generator")
    path = tiny_models_dir / "tiny-digits" / "generator.onnx"
    z_dim = card.latent.dim
    # Dynamic dims compare by position, whatever their names (onnxruntime may call it "N").
    check_signature(path, expected, _sig([("z", ["N", z_dim])], [("x", ["N", 1, 8, 8])]))
    with pytest.raises(CardError, match=r"generator\.onnx: graph inputs"):
        check_signature(path, expected, _sig([("noise", ["N", z_dim])], [("x", ["N", 1, 8, 8])]))
    with pytest.raises(CardError, match=r"generator\.onnx: graph inputs"):
        check_signature(path, expected, _sig([("z", ["N", z_dim + 1])], [("x", ["N", 1, 8, 8])]))
    with pytest.raises(CardError, match=r"generator\.onnx: graph outputs"):
        check_signature(path, expected, _sig([("z", ["N", z_dim])], [("x", ["N", 1, 8, 9])]))
    with pytest.raises(CardError, match=r"generator\.onnx: graph outputs"):
        check_signature(path, expected, _sig([("z", ["N", z_dim])], [("x", [4, 1, 8, 8])]))


def test_card_signature_matches_onnxruntime(tiny_models_dir: Path) -> None:
    """The card's signatures are what onnxruntime really sees in the files (the service's check)."""
    import onnxruntime as ort

    folder = tiny_models_dir / "tiny-ring"
    card, paths = load_model_folder(folder)
    for role, path in paths.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        observed = GraphSignature(
            inputs=[TensorSpec(name=a.name, shape=list(a.shape)) for a in session.get_inputs()],
            outputs=[TensorSpec(name=a.name, shape=list(a.shape)) for a in session.get_outputs()],
        )
        check_signature(path, card.expected_signature(role), observed)  # raises CardError on a mismatch
        assert [t.name for t in observed.inputs] == [{"generator": "z", "discriminator": "x"}[role]]
        assert observed.outputs[0].shape[1:] == ([2] if role == "generator" else [1])
