"""`pack` on GANs we did not train, written the way tutorials write them (tutorial_gans.py): the
folders it writes, what it reads from the graphs, and the declarations it refuses."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.card import load_model_folder
from service.runtime.engine import Engine

sys.path.insert(0, str(Path(__file__).parent))
import packed as pk
import tutorial_gans as tut

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _session(folder: Path, role: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(folder / f"{role}.onnx"), providers=["CPUExecutionProvider"])


def test_dcgan_folder_card_and_exact_logits_of_a_sigmoid_d(packed) -> None:
    folder = packed.models / "tut-dcgan"
    card, paths = load_model_folder(folder)  # checksums verified
    assert card.latent.shape == [100, 1, 1] and card.latent.dim == 100
    assert card.sample.shape == [3, 64, 64] and list(card.sample.value_range) == [-1.0, 1.0]
    assert card.training is None and card.source.kind == "torch"
    assert set(card.source.files) >= {"generator_weights", "discriminator_weights", "generator_module"}
    assert "nn.Sigmoid" in card.source.declarations["discriminator_conversion"]
    assert card.realness.measured_on == 200
    assert (folder / "samples.png").stat().st_size > 0
    # G's graph is the tutorial G; D's graph gives the logit of the tutorial D's probability.
    z = torch.randn(5, 100, 1, 1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = packed.generators["tut-dcgan"](z)
        p = packed.discriminators["tut-dcgan"](x).double()
    got_x = _session(folder, "generator").run(None, {"z": z.numpy()})[0]
    np.testing.assert_allclose(got_x, x.numpy(), atol=1e-4)
    logit = _session(folder, "discriminator").run(None, {"x": x.numpy()})[0]  # (5, 1)
    assert logit.shape == (5, 1)
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(logit[:, 0]).double()).numpy(), p.numpy(), atol=1e-5)


def test_conditional_folder_feeds_the_class_to_the_embedding(packed) -> None:
    folder = packed.models / "tut-cgan"
    engine = Engine.from_folder(folder, device="cpu")
    model = engine.get("tut-cgan")
    assert model.card.condition.names == ["red", "green", "blue"]
    assert [i.dtype for i in model.card.onnx.generator.inputs] == ["float32", "int64"]
    z = np.random.default_rng(0).standard_normal((6, tut.COND_LATENT)).astype(np.float32)
    c = np.array([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        want = packed.generators["tut-cgan"](torch.from_numpy(z), torch.from_numpy(c)).numpy()
        want_logit = packed.discriminators["tut-cgan"](torch.from_numpy(want), torch.from_numpy(c)).numpy()[:, 0]
    x = model.generate(z, c)
    np.testing.assert_allclose(x, want, atol=1e-5)
    np.testing.assert_allclose(model.logits(x, c), want_logit, atol=1e-4)
    # The class matters: the same z under another class is another sample.
    assert np.abs(model.generate(z, (c + 1) % 3) - x).max() > 1e-3


def test_torchscript_generator_only_packs_without_torch(packed) -> None:
    folder = packed.models / "tut-gonly"
    card, paths = load_model_folder(folder)
    assert set(paths) == {"generator"} and card.realness is None and not card.has_discriminator
    assert card.source.kind == "onnx" and card.source.files["generator"].path.endswith("mlp_G.onnx")
    assert (card.onnx.opset, card.onnx.ir_version) == (17, 8)  # as the TorchScript exporter wrote them
    assert card.onnx.generator.inputs[0].name == "noise" and card.latent.dim == 8 and card.latent.shape is None
    assert card.sample.shape == [3, 6, 6] and card.sample.kind == "image"


def _listing(models: Path) -> set[str]:
    return {p.name for p in models.iterdir()}


def _refused(result, flag: str, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"pack: error: {flag}:"), line
    for word in words:
        assert word in line, line


@pytest.mark.parametrize(
    "argv, flag, words",
    [
        (["--latent-dim", "7"], "--latent-dim", ["7", "'noise'", "8 values"]),
        (["--sample-shape", "3,5,5"], "--sample-shape", ["3,5,5", "[3, 6, 6]"]),
        (["--value-range", "-1,-0.5"], "--value-range", ["outside it"]),
        (["--classes", "3"], "--classes", ["not conditional"]),
        (["--latent-shape", "8,1,1"], "--latent-shape", ["8,1,1", "[8]"]),
        (["--kind", "image", "--sample-shape", "108"], "--sample-shape", ["108"]),
    ],
)
def test_declarations_contradicting_the_graph_are_refused_and_nothing_is_written(
    packed, tmp_path, capsys, argv, flag, words
) -> None:
    out = tmp_path / "models"
    base = {"--value-range": "0,1"}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v
    flat = [t for kv in base.items() for t in kv]
    result = pk.service_pack_here(
        capsys, "--generator", str(packed.files / "mlp_G.onnx"), *flat, "--name", "m", "--out", str(out)
    )
    _refused(result, flag, *words)
    assert not out.exists() or _listing(out) == set()


def test_missing_value_range_and_existing_name_are_refused(packed, tmp_path, capsys) -> None:
    gen = ["--generator", str(packed.files / "mlp_G.onnx")]
    _refused(pk.service_pack_here(capsys, *gen, "--name", "m", "--out", str(tmp_path)), "--value-range", "required")
    shutil.copytree(packed.models / "tut-gonly", tmp_path / "tut-gonly")
    _refused(
        pk.service_pack_here(capsys, *gen, "--value-range", "0,1", "--name", "tut-gonly", "--out", str(tmp_path)),
        "--name",
        "exists",
        "--force",
    )
    assert _listing(tmp_path) == {"tut-gonly"}


def test_a_tanh_generator_declared_as_zero_one_is_refused(packed, tmp_path) -> None:
    result = pk.training_pack(
        "--torch-generator",
        "tutorial_gans:dcgan_generator",
        "--weights",
        str(packed.files / "dcgan_G.safetensors"),
        "--latent-shape",
        "100,1,1",
        "--value-range",
        "0,1",
        "--name",
        "bad",
        "--out",
        str(tmp_path),
    )
    _refused(result, "--value-range", "0,1", "outside it")
    assert _listing(tmp_path) == set()


def test_weights_that_do_not_fit_or_are_not_a_state_dict_are_refused(packed, tmp_path) -> None:
    common = [
        "--torch-generator",
        "tutorial_gans:dcgan_generator",
        "--latent-shape",
        "100,1,1",
        "--value-range",
        "-1,1",
        "--name",
        "bad",
        "--out",
        str(tmp_path / "models"),
    ]
    _refused(pk.training_pack(*common, "--weights", str(packed.files / "dcgan_D.pt")), "--weights", "does not fit")
    pickled = tmp_path / "whole.pt"  # a whole pickled module, not a state dict: weights_only refuses to unpickle it
    torch.save(tut.DCGANGenerator(), pickled)
    _refused(pk.training_pack(*common, "--weights", str(pickled)), "--weights", "not a readable state dict")
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "netG": packed.generators["tut-dcgan"].state_dict()}, wrapped)
    _refused(pk.training_pack(*common, "--weights", str(wrapped)), "--weights", "state dict")
    assert not (tmp_path / "models").exists()


def test_a_probability_discriminator_packed_as_onnx_is_flagged(packed, tmp_path, capsys) -> None:
    """ONNX graphs cannot be edited without the onnx package: a sigmoid D packs, with a warning."""
    d_onnx = tmp_path / "D.onnx"
    pk.export_torchscript(packed.discriminators["tut-dcgan"], torch.zeros(2, 3, 64, 64), d_onnx, ("img", "p"))
    g_onnx = packed.models / "tut-dcgan" / "generator.onnx"
    result = pk.service_pack_here(
        capsys,
        "--generator",
        str(g_onnx),
        "--discriminator",
        str(d_onnx),
        "--value-range",
        "-1,1",
        "--name",
        "sig",
        "--out",
        str(tmp_path / "models"),
        "--realness-samples",
        "50",
    )
    assert result.returncode == 0, result.stderr
    assert "lies in [0, 1]" in result.stderr and "--discriminator-output probability" in result.stderr
    card = json.loads((tmp_path / "models" / "sig" / "model.json").read_text())
    assert card["onnx"]["discriminator"]["outputs"][0]["shape"] == ["n"]  # [batch]: squeezed, as the tutorial's D
