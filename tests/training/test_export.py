"""ONNX export: real exports of each network family, checked through real onnxruntime sessions."""

from __future__ import annotations

import argparse
import copy
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.card import load_model_folder, read_card
from training import graph_export
from training.commands import export as export_cmd
from training.export import ExportError, export_model
from training.networks import LatentConfig, NetworkConfig, build_discriminator, build_generator, sample_latent
from training.onnx_io import OnnxExportError

FAMILIES = {
    # The paper's MLP shape (maxout D, dropout, uniform noise), shrunk.
    "mlp": NetworkConfig(
        sample_shape=(1, 28, 28), g_hidden=(64, 64), d_hidden=(32, 32), d_pieces=3, latent=LatentConfig(dim=16)
    ),
    "dcgan": NetworkConfig(
        family="dcgan",
        sample_shape=(3, 32, 32),
        g_width=8,
        d_width=8,
        latent=LatentConfig(dim=16, distribution="normal"),
    ),
    "vector": NetworkConfig(
        sample_shape=(2,),
        output="linear",
        g_hidden=(32,),
        d_hidden=(32,),
        d_pieces=1,
        latent=LatentConfig(dim=4, distribution="normal"),
        g_init_scale=None,
        d_init_scale=None,
    ),
}
pytestmark = pytest.mark.usefixtures("torch_single_thread")
INFO = {
    "preset": "test",
    "config": {"note": "built in a test"},
    "steps": 3,
    "wall_time_s": 0.5,
    "seed": 7,
    "dataset": "none",
}


def _networks(cfg: NetworkConfig):
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    if cfg.family == "dcgan":
        # Give batch norm non-trivial running statistics, as training would.
        G.train()
        with torch.no_grad():
            G(torch.randn(32, cfg.latent.dim))
    return G, D


@pytest.fixture(scope="module")
def exported(tmp_path_factory, torch_single_thread) -> dict:
    """family -> (config, G, D, folder); D is left in train mode to check export turns dropout off."""
    out = tmp_path_factory.mktemp("export")
    result = {}
    for family, cfg in FAMILIES.items():
        G, D = _networks(cfg)
        D.train()
        folder = export_model(cfg, G, D, name=f"t-{family}", out_dir=out, training_info=INFO, progress=False)
        result[family] = (cfg, G, D, folder)
    return result


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_parity_with_torch(exported, family: str) -> None:
    cfg, G, D, folder = exported[family]
    g, d = _session(folder / "generator.onnx"), _session(folder / "discriminator.onnx")
    assert g.get_providers() == ["CPUExecutionProvider"]
    G, D = copy.deepcopy(G).eval(), copy.deepcopy(D).eval()  # the fixture's D stays in train mode
    rng = torch.Generator().manual_seed(123)
    for batch in (1, 7, 256):
        z = sample_latent(cfg.latent, batch, rng)  # (batch, z_dim)
        with torch.no_grad():
            x, logit = G(z), D(G(z))
        x_ort = g.run(None, {"z": z.numpy()})[0]
        logit_ort = d.run(None, {"x": x.numpy()})[0]
        assert x_ort.shape == (batch, *cfg.sample_shape) and x_ort.dtype == np.float32
        assert logit_ort.shape == (batch, 1) and logit_ort.dtype == np.float32
        assert np.abs(x_ort - x.numpy()).max() <= 1e-5
        assert np.abs(logit_ort - logit.numpy()).max() <= 1e-4


@pytest.mark.parametrize("family", list(FAMILIES))
def test_files_are_single_file_onnx_that_onnxruntime_accepts(exported, family: str) -> None:
    cfg, _, _, folder = exported[family]
    assert sorted(p.name for p in folder.iterdir()) == [
        "discriminator.onnx",
        "generator.onnx",
        "model.json",
        "samples.png",
    ]
    for fname, first_input in (("generator.onnx", "z"), ("discriminator.onnx", "x")):
        proto = onnx.load(str(folder / fname), load_external_data=False)
        onnx.checker.check_model(proto, full_check=True)
        assert proto.ir_version <= 13
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        assert proto.graph.input[0].name == first_input
        batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # dynamic batch axis
    assert (folder / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dropout_is_off_and_callers_modules_untouched(exported) -> None:
    cfg, G, D, folder = exported["mlp"]
    assert D.training, "export must not switch the caller's D to eval mode"
    d = _session(folder / "discriminator.onnx")
    x = np.random.default_rng(0).random((64, *cfg.sample_shape), dtype=np.float32)
    first, second = d.run(None, {"x": x})[0], d.run(None, {"x": x})[0]
    np.testing.assert_array_equal(first, second)
    with torch.no_grad():
        eval_logit = D.eval()(torch.from_numpy(x)).numpy()
    D.train()
    assert np.abs(first - eval_logit).max() <= 1e-4


def test_card_describes_the_export(exported) -> None:
    cfg, _, _, folder = exported["mlp"]
    card, _ = load_model_folder(folder)
    assert card.latent.distribution == "uniform"
    assert card.latent.low == pytest.approx(-(3**0.5)) and card.latent.high == pytest.approx(3**0.5)
    assert card.sample.kind == "image" and card.sample.shape == [1, 28, 28]
    assert tuple(card.sample.value_range) == (0.0, 1.0)
    assert card.onnx.ir_version <= 13 and card.onnx.opset >= 17
    assert card.onnx.generator.inputs[0].shape == ["batch", 16]
    assert card.onnx.discriminator.outputs[0].shape == ["batch", 1]
    assert card.training.seed == 7 and card.training.steps == 3 and card.training.preset == "test"
    assert card.training.torch_version == torch.__version__
    assert card.dataset == "none"


def test_vector_card_has_observed_range_and_meaningful_max_logit(exported) -> None:
    cfg, _, _, folder = exported["vector"]
    card = read_card(folder)
    assert card.sample.kind == "vector" and card.sample.shape == [2]
    assert card.latent.distribution == "normal" and card.latent.low is None
    lo, hi = card.sample.value_range
    # Fresh samples of G, through onnxruntime: nearly all inside the recorded range and with a
    # logit at most the recorded maximum (both were measured over 10,000 samples).
    z = np.random.default_rng(99).standard_normal((10_000, 4)).astype(np.float32)
    x = _session(folder / "generator.onnx").run(None, {"z": z})[0]
    logit = _session(folder / "discriminator.onnx").run(None, {"x": x})[0]
    assert np.mean((x < lo) | (x > hi)) < 0.005
    assert np.mean(logit > card.realness.max_logit) < 0.005
    assert card.realness.measured_on == 10_000


def test_refuses_to_overwrite_without_force(exported, tmp_path: Path) -> None:
    cfg, G, D, folder = exported["vector"]
    before = (folder / "model.json").read_bytes()
    with pytest.raises(ExportError, match="already exists.*--force"):
        export_model(cfg, G, D, name=folder.name, out_dir=folder.parent, training_info=INFO, progress=False)
    assert (folder / "model.json").read_bytes() == before


def test_force_replaces_and_leaves_nothing_behind(exported, tmp_path: Path) -> None:
    cfg, G, D, folder = exported["vector"]
    shutil.copytree(folder, tmp_path / "m")
    old_sha = read_card(tmp_path / "m").files["generator"].sha256
    G2 = copy.deepcopy(G)
    with torch.no_grad():
        G2.out.bias.add_(1.0)
    export_model(cfg, G2, D, name="m", out_dir=tmp_path, training_info=INFO, force=True, progress=False)
    card, _ = load_model_folder(tmp_path / "m")
    assert card.files["generator"].sha256 != old_sha
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging or old folders left


def test_parity_failure_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    # A tolerance no export can meet stands in for a graph that disagrees with torch.
    monkeypatch.setattr(graph_export, "G_TOLERANCE", -1.0)  # the single-graph builder checks parity
    cfg = FAMILIES["vector"]
    G, D = _networks(cfg)
    with pytest.raises(OnnxExportError, match=r"generator\.onnx: differs from torch .* at batch 1"):
        export_model(cfg, G, D, name="bad", out_dir=tmp_path, training_info=INFO, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["Bad", "../escape", "a b", ""])
def test_bad_name_refused_before_any_work(tmp_path: Path, name: str) -> None:
    cfg = FAMILIES["vector"]
    with pytest.raises(ExportError, match="^name: "):
        export_model(
            cfg,
            torch.nn.Identity(),
            torch.nn.Identity(),
            name=name,
            out_dir=tmp_path,
            training_info=INFO,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_training_info_key_refused(tmp_path: Path) -> None:
    cfg = FAMILIES["vector"]
    G, D = _networks(cfg)
    info = {k: v for k, v in INFO.items() if k != "seed"}
    with pytest.raises(ExportError, match="training_info: missing seed"):
        export_model(cfg, G, D, name="m", out_dir=tmp_path, training_info=info, progress=False)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    export_cmd.add_arguments(parser)
    return export_cmd.run(parser.parse_args(list(argv)))


def test_cli_missing_run_dir(tmp_path: Path, capsys) -> None:
    assert _cli(str(tmp_path / "nope"), "--name", "m", "--out", str(tmp_path / "models")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "no such run directory" in err
    assert not (tmp_path / "models").exists()


def test_cli_bad_name(tmp_path: Path, capsys) -> None:
    assert _cli(str(tmp_path), "--name", "Not OK", "--out", str(tmp_path / "models")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("export: error: name:")


def test_cli_exports_a_trained_run(tiny_models_dir: Path, tmp_path: Path, capsys) -> None:
    from training.__main__ import main

    run_dir = tiny_models_dir.parent / "runs" / "tiny-ring"
    out = tmp_path / "models"
    assert main(["export", str(run_dir), "--name", "ring-copy", "--out", str(out), "--description", "again"]) == 0
    assert "ring-copy" in capsys.readouterr().out
    card, _ = load_model_folder(out / "ring-copy")
    fixture_card = read_card(tiny_models_dir / "tiny-ring")
    # The same run exports to the same graphs: export is deterministic.
    assert card.files == fixture_card.files
    assert card.description == "again" and card.dataset == "ring8"
    assert card.training.preset == "ring8" and card.training.steps > 0
    assert card.training.config["network"]["latent"]["dim"] == card.latent.dim == 4
    # A second export to the same name is refused with one line, and leaves the first intact.
    assert main(["export", str(run_dir), "--name", "ring-copy", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err
    load_model_folder(out / "ring-copy")


def test_cli_run_dir_without_checkpoint(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty-run").mkdir()
    assert _cli(str(tmp_path / "empty-run"), "--name", "m", "--out", str(tmp_path / "models")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty-run" in err
