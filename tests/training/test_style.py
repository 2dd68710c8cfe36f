"""The style-based networks (training/style/), their small-data augmentation, the emoji data set
they train on, and a real (tiny) run of the emoji-style preset: resumed exactly, exported to
mapping.onnx + synthesis.onnx + w_avg.npy that the service serves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training import augment
from training.data import DataError, dataset_info, load_dataset
from training.data import emoji as emoji_data
from training.networks import build_discriminator, build_generator
from training.presets import resolve

TINY = [
    "dataset_options.size=8",
    "network.style_channels=16,16",
    "network.style_d_channels=16,16",
    "network.w_dim=16",
    "network.latent.dim=16",
    "network.mapping_layers=1",
    "batch_size=8",
    "grid_samples=9",
]


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    yield


@pytest.fixture(scope="module")
def tiny_config():
    return resolve("emoji-style", TINY)


# ---- the data set ----


def test_emoji_splits_are_disjoint_by_base_emoji_and_labelled_by_group():
    info = dataset_info("emoji", size=8)
    assert info.sample_shape == (3, 8, 8) and info.class_names[0] == "Smileys & Emotion"
    splits = {s: load_dataset("emoji", s, size=8) for s in ("train", "valid", "test")}
    _, _, kept = emoji_data.render(8, True)
    assert sum(len(s.x) for s in splits.values()) == len(kept) > 3000
    assert 0.75 < len(splits["train"].x) / len(kept) < 0.85
    for s in splits.values():
        assert s.x.min() >= 0 and s.x.max() <= 1 and s.y.min() >= 0 and s.y.max() < len(info.class_names)
    # a skin-tone variant lies in its base emoji's split
    assert emoji_data.split_of("\U0001f44b\U0001f3fd") == emoji_data.split_of("\U0001f44b")
    corners = splits["train"].x[:, :, 0, 0]
    assert (corners > 0.95).float().mean() > 0.9  # drawn on white


def test_singles_only_is_the_smaller_set():
    singles = emoji_data.render(8, False)[2]
    assert 1200 < len(singles) < 1500 and all(len(e.rstrip("\ufe0f")) == 1 for e in singles)


def test_a_missing_font_is_refused_naming_the_file_and_package(monkeypatch, tmp_path):
    monkeypatch.setattr(emoji_data, "FONT_PATH", tmp_path / "NotoColorEmoji.ttf")
    with pytest.raises(DataError, match="NotoColorEmoji.ttf: missing.*fonts-noto-color-emoji"):
        dataset_info("emoji", size=8)


# ---- the networks ----


def test_the_generator_is_a_function_of_w_in_eval_mode(tiny_config):
    torch.manual_seed(0)
    G = build_generator(tiny_config.network)
    assert G.num_ws == 4  # 4x4: one conv; 8x8: two convs; the last toRGB one more
    z, c = torch.randn(3, 16), torch.tensor([0, 4, 8])
    G.eval()
    with torch.no_grad():
        a, b = G(z, c), G(z, c)
        assert torch.equal(a, b) and a.shape == (3, 3, 8, 8) and 0 <= a.min() and a.max() <= 1
        ws = G.mapping(z, c)[:, None].repeat(1, G.num_ws, 1)
        assert torch.equal(G.draw(ws), a)
    before = G.mapping.w_avg.clone()
    G.train()
    with torch.no_grad():
        G(z, c)
    assert not torch.equal(before, G.mapping.w_avg)  # tracked while training only


def test_the_served_discriminator_scores_each_sample_alone(tiny_config):
    torch.manual_seed(0)
    D = build_discriminator(tiny_config.network)
    x, c = torch.rand(8, 3, 8, 8), torch.arange(8) % 9
    D.train()
    D(x, c)  # training moves the running minibatch-std feature
    D.eval()
    with torch.no_grad():
        assert torch.allclose(D(x, c)[:3], D(x[:3], c[:3]), atol=1e-6)


# ---- augmentation ----


def test_augment_names_unknown_kinds():
    assert augment.parse("color, xflip") == ("color", "xflip")
    with pytest.raises(ValueError, match="'blur' is not one of"):
        augment.parse("color,blur")


def test_translation_fills_white_cutout_zeros_and_gradients_flow():
    torch.manual_seed(1)
    x = torch.zeros(64, 3, 8, 8, requires_grad=True)
    moved = augment.translation(x)
    assert moved.shape == x.shape and (moved == 1).any() and (moved == 0).any()
    holes = augment.cutout(torch.ones(16, 3, 8, 8))
    assert ((holes == 0).flatten(1).sum(1) > 0).all()
    augment.diff_augment(x, ("color", "translation", "cutout")).sum().backward()
    assert x.grad is not None
    flipped = augment.augment_reals(torch.arange(8.0).expand(64, 3, 8, 8), ("xflip",))
    rows = flipped[:, 0, 0]
    assert ((rows[:, 0] == 7) | (rows[:, 0] == 0)).all() and (rows[:, 0] == 7).any() and (rows[:, 0] == 0).any()


# ---- a real run: resumed exactly, exported, served ----


def test_a_tiny_run_resumes_exactly_and_exports_a_servable_style_folder(tiny_config, tmp_path):
    from training.checkpoint import load_run
    from training.export import export_run
    from training.trainer import train

    cfg = resolve("emoji-style", TINY + ["d_r1_every=2"])
    train(cfg, tmp_path / "straight", max_steps=4, progress=False)
    train(cfg, tmp_path / "resumed", max_steps=2, progress=False)
    train(cfg, tmp_path / "resumed", max_steps=4, progress=False)
    a, b = load_run(tmp_path / "straight"), load_run(tmp_path / "resumed")
    for (name, p), q in zip(a.generator.state_dict().items(), b.generator.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs after a resume"

    folder = export_run(tmp_path / "straight", name="tiny-emoji", out_dir=tmp_path / "models", progress=False)
    from models.card import load_model_folder
    from service.runtime.engine import Engine

    card, paths = load_model_folder(folder)
    assert card.schema_version == 3 and set(paths) == {"mapping", "synthesis", "discriminator"}
    assert card.condition.names == list(emoji_data.GROUPS)
    w_avg = np.load(folder / "w_avg.npy", allow_pickle=False)
    assert np.array_equal(w_avg, a.generator.mapping.w_avg.numpy())
    engine = Engine.from_folder(folder, device="cpu")
    model = engine.get("tiny-emoji")
    z, c = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32), np.arange(5)
    with torch.no_grad():
        want = a.generator(torch.from_numpy(z), torch.from_numpy(c)).numpy()
    np.testing.assert_allclose(model.generate(z, c), want, atol=1e-5)
    engine.executor.shutdown(wait=False)

    # The figures of docs/RESULTS.md: psi 0's row is w_avg's image in every column; mixing from
    # layer 0 gives each column seed's own image in its column.
    from training.style.figures import StyleFolder, main, mixing, psi_sweep

    style = StyleFolder(folder)
    sweep = psi_sweep(style, [1, 2, 3], psis=(0.0, 1.0))
    assert np.array_equal(sweep[0], sweep[1]) and np.array_equal(sweep[1], sweep[2])
    assert not np.array_equal(sweep[3], sweep[4])
    tiles = mixing(style, [5, 6], [7, 8], from_layer=0)  # blank, 7, 8, then per row: own, 7, 8
    assert np.array_equal(tiles[4], tiles[1]) and np.array_equal(tiles[5], tiles[2])
    assert main([str(folder), "--out", str(tmp_path / "figures"), "--from-layer", "2"]) == 0
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"psi_sweep.png", "mixing.png", "grid_zoom.png"}


def test_our_style_export_runs_in_torch_and_takes_an_encoder_and_projection(tiny_config, tmp_path):
    """The trained style-based graphs through training/graph_torch agree with the torch G they came
    from; E then learns w from pairs and from real emoji through G, and projection runs in w."""
    import json

    from training.__main__ import main
    from training.checkpoint import load_run
    from training.export import export_run
    from training.folder_generator import FolderGenerator
    from training.trainer import train

    train(tiny_config, tmp_path / "run", max_steps=2, progress=False)
    folder = export_run(tmp_path / "run", name="tiny-emoji", out_dir=tmp_path / "models", progress=False)
    G = load_run(tmp_path / "run").generator.eval()
    z, c = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3])
    ours = FolderGenerator(folder)
    with torch.no_grad():
        w = G.mapping(z, c)
        torch.testing.assert_close(ours.latent_of(z, c), w, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(w), G.draw(w[:, None].repeat(1, G.num_ws, 1)), atol=1e-5, rtol=0)

    args = ["encoder", str(folder), "--steps", "20", "--pool", "200", "--batch", "16", "--real-steps", "4", "--quiet"]
    assert main(args) == 0
    card = json.loads((folder / "model.json").read_text())
    assert card["onnx"]["encoder"]["outputs"][0]["shape"] == ["batch", 16]  # w
    assert "pairs_only" in card["metrics"]["encoder_real_reconstruction_mse"]["details"]

    held = load_dataset("emoji", "test", size=8, sequences=True)
    np.save(tmp_path / "held.npy", held.x.numpy()[:2])
    out = tmp_path / "projected"
    assert (
        main(
            [
                "project",
                str(folder),
                str(tmp_path / "held.npy"),
                "--out",
                str(out),
                "--steps",
                "5",
                "--class",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    record = json.loads((out / "projection.json").read_text())
    assert record["space"] == "w" and record["started_from"] == "encoder"
    assert all(i["pixel_mse"] <= i["pixel_mse_start"] + 1e-6 for i in record["images"])


def test_a_style_model_is_calibrated_from_its_own_d_and_keeps_its_style_card(tiny_config, tmp_path):
    """Calibration on a style-based folder: D is rebuilt from discriminator.onnx's initializers
    (the exporter's folding of the equalized layers' weight * scale had left none of them named),
    the card stays version 3 with its style section, and the mapping, synthesis and w_avg are left
    byte for byte; the new D serves."""
    from models.card import load_model_folder, read_card
    from service.runtime.engine import Engine
    from training.calibrate import CalibrationConfig, calibrate_model
    from training.export import export_run
    from training.trainer import train

    train(tiny_config, tmp_path / "run", max_steps=2, progress=False)
    folder = export_run(tmp_path / "run", name="tiny-emoji", out_dir=tmp_path / "models", progress=False)
    before = read_card(folder)
    g_files = {r: (folder / f"{r}.onnx").read_bytes() for r in ("mapping", "synthesis")}

    report = calibrate_model(folder, CalibrationConfig(steps=4, batch=16, eval_every=2, patience=1), progress=False)
    card, _ = load_model_folder(folder)  # every file checked against the new card
    assert report.started_from == "training"
    assert card.schema_version == 3 and card.style == before.style
    assert card.generator_sha256 == before.generator_sha256
    assert all((folder / f"{r}.onnx").read_bytes() == b for r, b in g_files.items())
    assert card.files["discriminator"].sha256 != before.files["discriminator"].sha256
    assert card.realness.discriminator == "calibrated"
    engine = Engine.from_folder(folder, device="cpu")
    x = np.random.default_rng(0).random((3, *tiny_config.network.sample_shape), dtype=np.float32)
    assert np.isfinite(engine.get("tiny-emoji").logits(x, np.arange(3))).all()
    engine.executor.shutdown(wait=False)


def test_a_platt_fit_folds_into_the_style_d_as_one_affine_map_for_every_class(tiny_config):
    """The style-based D's logit is out(h) + <embed(c), h> / sqrt(C), in equalized layers: the fit's
    a scales both terms and b joins out's bias (through its lr_mul), so the folded D gives
    a * logit + b for every class."""
    from training.served_d import logits_of, platt_fit

    torch.manual_seed(0)
    D = build_discriminator(tiny_config.network).eval()
    with torch.no_grad():  # as after training: the embedding's bias is no longer its initial zeros
        D.embed.bias.normal_()
    rng = np.random.default_rng(1)
    shape, classes = tiny_config.network.sample_shape, tiny_config.network.classes
    x = rng.random((256, *shape), dtype=np.float32)
    c = np.arange(256) % classes
    old = logits_of(D, x, c)
    # "Real" drawn more often where D's logit is high, not always: a fit with a finite a > 0.
    z = (old - old.mean()) / old.std()
    real = rng.random(256) < 1 / (1 + np.exp(-2 * z))
    real, fake = (x[real], c[real]), (x[~real], c[~real])
    a, b = platt_fit(D, real, fake)
    assert (a, b) != (1.0, 0.0)
    np.testing.assert_allclose(logits_of(D, x, c), a * old + b, rtol=1e-4, atol=1e-5)
