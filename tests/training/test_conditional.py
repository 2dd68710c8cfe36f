"""Conditional GANs p(x | c): networks, presets, labelled data, bit-for-bit resume and export of
G(z, c) and D(x, c) through real onnxruntime sessions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.card import load_model_folder
from training.checkpoint import latest_checkpoint, load_run
from training.config import ConfigError
from training.data import dataset_info, load_dataset
from training.export import export_run
from training.networks import LatentConfig, NetworkConfig, build_discriminator, build_generator
from training.onnx_io import cpu_session
from training.presets import resolve
from training.trainer import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")
TINY_MLP = ["network.g_hidden=[16]", "network.d_hidden=[16]"]


@pytest.mark.parametrize("family, shape", [("mlp", (1, 8, 8)), ("mlp", (2,)), ("dcgan", (1, 32, 32))])
@pytest.mark.parametrize("head", ["concat", "projection"])
def test_conditional_networks_take_and_use_the_class(family, shape, head):
    cfg = NetworkConfig(
        family=family,
        sample_shape=shape,
        classes=4,
        d_condition=head,
        g_hidden=(16,),
        d_hidden=(16,),
        d_pieces=2,
        g_width=8,
        d_width=8,
        output="sigmoid",
        latent=LatentConfig(8, "normal"),
        d_init_scale=None,
        g_init_scale=None,
    )
    torch.manual_seed(0)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    if head == "projection":  # zero-initialised: give the class embedding something to say
        torch.nn.init.normal_(D.embed.weight)
    z = torch.randn(6, 8)
    c = torch.tensor([0, 1, 2, 3, 0, 1])
    x = G(z, c)
    assert x.shape == (6, *shape)
    assert D(x, c).shape == (6, 1)
    # The class changes what G makes from the same z, and what D says of the same x.
    assert not torch.allclose(G(z, c), G(z, (c + 1) % 4))
    assert not torch.allclose(D(x, c), D(x, (c + 1) % 4))
    with pytest.raises(ValueError, match="needs the class c"):
        G(z)
    with pytest.raises(ValueError, match="needs the class c"):
        D(x)


def test_unconditional_networks_keep_their_weights_and_init():
    # A classes=0 pair is the pair that existed before conditioning: same parameters, same init draws.
    cfg = NetworkConfig(g_hidden=(16,), d_hidden=(16,))
    torch.manual_seed(3)
    g = build_generator(cfg).state_dict()
    assert sorted(g) == ["body.0.bias", "body.0.weight", "out.bias", "out.weight"]
    assert sorted(build_discriminator(cfg).state_dict()) == [
        "net.2.linear.bias",
        "net.2.linear.weight",
        "net.4.bias",
        "net.4.weight",
    ]


def test_packing_and_conditioning_do_not_mix():
    with pytest.raises(ValueError, match="d_pack"):
        NetworkConfig(classes=10, d_pack=2)


@pytest.mark.parametrize(
    "preset, classes, names",
    [
        ("mnist-cond", 10, [str(d) for d in range(10)]),
        ("digits-cond", 10, [str(d) for d in range(10)]),
        ("ring8-cond", 8, [f"mode{k}" for k in range(8)]),
        ("grid25-cond", 25, [f"mode{k}" for k in range(25)]),
        ("dcgan-mnist-cond", 10, [str(d) for d in range(10)]),
    ],
)
def test_conditional_presets_take_their_classes_from_the_data(preset, classes, names):
    cfg = resolve(preset)
    assert cfg.conditional and cfg.network.classes == classes
    assert list(dataset_info(cfg.dataset, **cfg.dataset_options).class_names) == names
    assert resolve(preset.replace("-cond", "") if preset != "mnist-cond" else "mnist").network.classes == 0


def test_a_conditional_run_needs_a_labelled_dataset():
    with pytest.raises(ConfigError, match="conditional: toy1d has no class labels"):
        resolve("ring8-cond", ["dataset=toy1d"])


@pytest.mark.parametrize("name, modes", [("ring8", 8), ("grid25", 25)])
def test_toy_labels_are_the_mode_each_sample_came_from(name, modes):
    from training.data.toy import mixture_modes

    split = load_dataset(name, "train")
    assert split.y is not None and split.y.dtype == torch.int64
    assert set(split.y.tolist()) == set(range(modes))
    nearest = np.linalg.norm(split.x.numpy()[:, None] - mixture_modes(name)[None], axis=2).argmin(1)
    assert (nearest == split.y.numpy()).mean() > 0.999


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("mnist-cond", ["batch_size=16"] + TINY_MLP),  # maxout D, projection head, R1, G's weight average
        ("ring8-cond", TINY_MLP + ["batch_size=64"]),  # concat head
    ],
)
def test_conditional_resume_is_bit_for_bit(tmp_path, preset, overrides):
    config = resolve(preset, overrides + ["epochs=100"])
    straight = train(config, tmp_path / "straight", max_steps=30, progress=False)
    half = train(config, tmp_path / "resumed", max_steps=15, progress=False)
    train(config, half, max_steps=30, progress=False)
    a, b = latest_checkpoint(straight), latest_checkpoint(half)
    assert a.name == b.name == "step-00000030"
    files = ["generator", "discriminator", "optim_d", "optim_g"] + (["generator_ema"] if config.g_ema_decay else [])
    for f in files:
        wa, wb = load_file(a / f"{f}.safetensors"), load_file(b / f"{f}.safetensors")
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (f, k)


@pytest.fixture(scope="module")
def digits_cond_model(tmp_path_factory, torch_single_thread):
    root = tmp_path_factory.mktemp("cond")
    cfg = resolve("digits-cond", TINY_MLP + ["batch_size=64", "epochs=1"])
    run = train(cfg, root / "run", progress=False)
    return run, export_run(run, name="digits-cond", out_dir=root / "models", progress=False)


def test_export_writes_g_of_z_c_and_d_of_x_c_with_a_condition(digits_cond_model):
    run, folder = digits_cond_model
    card, paths = load_model_folder(folder)
    assert card.schema_version == 2
    assert card.condition.classes == 10 and card.condition.names == [str(d) for d in range(10)]
    for role, first in (("generator", "z"), ("discriminator", "x")):
        sig = getattr(card.onnx, role)
        assert [(t.name, t.dtype) for t in sig.inputs] == [(first, "float32"), ("c", "int64")]
    # The graphs agree with torch at several batch sizes, class by class.
    loaded = load_run(run)
    g, d = cpu_session(paths["generator"]), cpu_session(paths["discriminator"])
    rng = np.random.default_rng(0)
    for n in (1, 5, 33):
        z = rng.standard_normal((n, 32)).astype(np.float32)
        c = rng.integers(0, 10, n).astype(np.int64)
        x = g.run(None, {"z": z, "c": c})[0]
        with torch.no_grad():
            x_t = loaded.generator(torch.from_numpy(z), torch.from_numpy(c)).numpy()
            l_t = loaded.discriminator(torch.from_numpy(x), torch.from_numpy(c)).numpy()
        assert np.abs(x - x_t).max() < 1e-5
        assert np.abs(d.run(None, {"x": x, "c": c})[0] - l_t).max() < 1e-4
    # The preview has one row per class.
    from PIL import Image

    im = Image.open(folder / "samples.png")
    assert im.height > 0 and abs(im.width / im.height - 1.0) < 0.05  # 10 x 10 tiles
    assert json.loads((folder / "model.json").read_text())["condition"]["input"] == "c"


def test_grids_of_a_conditional_image_run_have_one_row_per_class(digits_cond_model):
    run, _ = digits_cond_model
    grid = sorted((run / "grids").glob("*.png"))[-1]
    from PIL import Image

    im = np.asarray(Image.open(grid))
    assert im.ndim == 2 and im.shape[0] == im.shape[1]  # 10 rows of 10 8x8 tiles, scaled


def test_a_conditional_dcgan_pair_exports_with_parity(tmp_path):
    from training.export import export_model

    cfg = NetworkConfig(
        family="dcgan",
        sample_shape=(1, 32, 32),
        g_width=8,
        d_width=8,
        classes=3,
        d_condition="concat",
        latent=LatentConfig(dim=8, distribution="normal"),
    )
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    with torch.no_grad():  # batch norm with running statistics, as training leaves it
        G(torch.randn(16, 8), torch.arange(16) % 3)
    info = {"preset": "test", "config": {}, "steps": 1, "wall_time_s": 0.1, "seed": 1, "dataset": "none"}
    folder = export_model(
        cfg, G, D, name="dc-cond", out_dir=tmp_path, training_info=info, progress=False, class_names=["a", "b", "c"]
    )  # parity at batches 1, 7 and 256 is checked inside
    card, _ = load_model_folder(folder)
    assert card.condition.names == ["a", "b", "c"]
    with pytest.raises(Exception, match="class_names"):
        export_model(cfg, G, D, name="dc-cond2", out_dir=tmp_path, training_info=info, progress=False)
