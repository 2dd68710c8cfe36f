"""The named presets in one table, `--set key=value` overrides, and what makes a configuration
consistent with its data: `resolve(preset, overrides)` is how every run's config is made.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from training.config import ConfigError, OptimConfig, TrainConfig, check_field
from training.data import DataError, check_options, dataset_info
from training.networks import LatentConfig, NetworkConfig

# Vector data may take any value; images must stay in the range of G's output activation.
_OUTPUT_FOR_RANGE = {(0.0, 1.0): "sigmoid", (-1.0, 1.0): "tanh"}


# ---- presets: the one table of named configurations ----


def _mlp(
    shape: tuple[int, ...], g: tuple[int, ...], d: tuple[int, ...], z: int, output: str = "linear", dropout: float = 0.0
) -> NetworkConfig:
    """A small MLP pair with PyTorch's default init and LeakyReLU D units (toys, digits)."""
    return NetworkConfig(
        family="mlp",
        sample_shape=shape,
        latent=LatentConfig(z, "normal"),
        output=output,
        g_hidden=g,
        d_hidden=d,
        d_pieces=1,
        d_input_dropout=0.0,
        d_hidden_dropout=dropout,
        g_init_scale=None,
        d_init_scale=None,
    )


def _dcgan(shape: tuple[int, ...], width: int) -> NetworkConfig:
    return NetworkConfig(
        family="dcgan",
        sample_shape=shape,
        latent=LatentConfig(100, "normal"),
        output="sigmoid",
        g_width=width,
        d_width=width,
    )


_ADAM_DCGAN = OptimConfig("adam", lr=2e-4, betas=(0.5, 0.999))
_ADAM_STYLE = OptimConfig("adam", lr=2.5e-3, betas=(0.0, 0.99))
_ADAM_TOY = OptimConfig("adam", lr=1e-3, betas=(0.5, 0.999))
_ADAM_TOY_DECAY = OptimConfig("adam", lr=1e-3, betas=(0.5, 0.999), lr_decay=1.001, min_lr=1e-5)
# goodfeli/adversarial mnist.yaml: SGD, lr 0.1 / 1.000004 per update (floor 1e-6), momentum 0.5 -> 0.7
# over epochs 1..250; one learning rule for both nets (they were one pylearn2 model).
_SGD_PAPER = OptimConfig(
    "sgd", lr=0.1, momentum=0.5, final_momentum=0.7, momentum_epochs=250, lr_decay=1.000004, min_lr=1e-6
)

PRESETS: dict[str, TrainConfig] = {
    # The shipped `mnist` model: the paper's networks and init on mnist5k, but Adam and an R1 penalty.
    # On 4,000 digits the paper's SGD recipe lets D win and G hops between a few digits; plain Adam
    # collapses to one digit; Adam + R1 (gamma 1) keeps D(x) ~ 0.55 and all ten digits, and the
    # average of G's weights removes most of the speckle (docs/RESULTS.md).
    "mnist": TrainConfig(
        preset="mnist",
        dataset="mnist5k",
        network=NetworkConfig(),
        batch_size=100,
        d_steps=1,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        d_r1_gamma=1.0,
        g_ema_decay=0.9995,
        epochs=400,
        g_bias_from_data=True,
    ),
    "mnist-paper": TrainConfig(
        preset="mnist-paper",
        dataset="mnist5k",
        network=NetworkConfig(),
        batch_size=100,
        d_steps=1,
        d_optim=_SGD_PAPER,
        g_optim=_SGD_PAPER,
        epochs=300,
        g_bias_from_data=True,
    ),
    # Measured on 2 CPU cores: KS(G, data) ~0.02-0.03 after these 1,560 steps (a few seconds); a
    # constant lr keeps oscillating around KS 0.05-0.1, so the lr decays to settle the game.
    "toy1d": TrainConfig(
        preset="toy1d",
        dataset="toy1d",
        network=_mlp((1,), (32, 32), (64, 64), z=4),
        batch_size=256,
        d_optim=_ADAM_TOY_DECAY,
        g_optim=_ADAM_TOY_DECAY,
        epochs=20,
    ),
    "ring8": TrainConfig(
        preset="ring8",
        dataset="ring8",
        network=_mlp((2,), (128, 128), (128, 128), z=8),
        batch_size=256,
        d_optim=_ADAM_TOY,
        g_optim=_ADAM_TOY,
        epochs=100,
    ),
    "grid25": TrainConfig(
        preset="grid25",
        dataset="grid25",
        network=_mlp((2,), (256, 256), (256, 256), z=8),
        batch_size=256,
        d_optim=_ADAM_TOY,
        g_optim=_ADAM_TOY,
        epochs=100,
    ),
    # PacGAN4 (Lin et al. 2018): the same networks and data, D judging packs of 4 samples.
    "ring8-pac": TrainConfig(
        preset="ring8-pac",
        dataset="ring8",
        network=replace(_mlp((2,), (128, 128), (128, 128), z=8), d_pack=4),
        batch_size=256,
        d_optim=_ADAM_TOY,
        g_optim=_ADAM_TOY,
        epochs=100,
    ),
    "grid25-pac": TrainConfig(
        preset="grid25-pac",
        dataset="grid25",
        network=replace(_mlp((2,), (256, 256), (256, 256), z=8), d_pack=4),
        batch_size=256,
        d_optim=_ADAM_TOY,
        g_optim=_ADAM_TOY,
        epochs=100,
    ),
    "digits": TrainConfig(
        preset="digits",
        dataset="digits",
        network=_mlp((1, 8, 8), (256, 256), (128, 128), z=32, output="sigmoid", dropout=0.3),
        batch_size=64,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        epochs=300,
        g_bias_from_data=True,
    ),
    "dcgan-mnist": TrainConfig(
        preset="dcgan-mnist",
        dataset="mnist5k",
        dataset_options={"size": 32},
        network=_dcgan((1, 32, 32), 32),
        batch_size=64,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        epochs=25,
    ),
    # Conditional p(x | c) (the paper's section 7): the same networks with the class one-hot beside z
    # and, in D, beside x (d_condition="concat"; docs/DESIGN.md and docs/RESULTS.md say why); the
    # class of a toy sample is its mode. mnist-cond's D has the projection head it was shipped with;
    # 352 epochs (14,080 steps) is the length the shipped model trained: 80 epochs (3,200 steps) missed
    # both of its goals, 352 met them (docs/RESULTS.md section 5).
    "mnist-cond": TrainConfig(
        preset="mnist-cond",
        dataset="mnist5k",
        conditional=True,
        network=NetworkConfig(d_condition="projection"),
        batch_size=100,
        d_steps=1,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        d_r1_gamma=1.0,
        g_ema_decay=0.995,
        epochs=352,
        g_bias_from_data=True,
    ),
    "digits-cond": TrainConfig(
        preset="digits-cond",
        dataset="digits",
        conditional=True,
        network=_mlp((1, 8, 8), (256, 256), (128, 128), z=32, output="sigmoid", dropout=0.3),
        batch_size=64,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        epochs=300,
        g_bias_from_data=True,
    ),
    "ring8-cond": TrainConfig(
        preset="ring8-cond",
        dataset="ring8",
        conditional=True,
        network=_mlp((2,), (128, 128), (128, 128), z=8),
        batch_size=256,
        d_optim=_ADAM_TOY,
        g_optim=_ADAM_TOY,
        epochs=100,
    ),
    "grid25-cond": TrainConfig(
        preset="grid25-cond",
        dataset="grid25",
        conditional=True,
        network=_mlp((2,), (256, 256), (256, 256), z=8),
        batch_size=256,
        d_optim=_ADAM_TOY,
        g_optim=_ADAM_TOY,
        epochs=100,
    ),
    "dcgan-mnist-cond": TrainConfig(
        preset="dcgan-mnist-cond",
        dataset="mnist5k",
        conditional=True,
        dataset_options={"size": 32},
        network=_dcgan((1, 32, 32), 32),
        batch_size=64,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        epochs=25,
    ),
    "folder": TrainConfig(
        preset="folder",
        dataset="folder",
        dataset_options={"size": 32, "channels": 3},
        network=_dcgan((3, 32, 32), 64),
        batch_size=64,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        epochs=50,
    ),
    # The shipped RGB model `patches`: DCGAN on 32x32 texture patches of scikit-learn's two
    # photographs (training/data/patches.py), 9 epochs (855 steps; ~70 min on 2 CPU cores shared
    # with other jobs). No weight average: over ~1k steps an average at 0.999 is still mostly the
    # initial G, and batch norm's averaged statistics then give flat grey samples (docs/RESULTS.md).
    "patches-dcgan": TrainConfig(
        preset="patches-dcgan",
        dataset="patches",
        dataset_options={"size": 32, "stride": 8},
        network=_dcgan((3, 32, 32), 32),
        batch_size=64,
        d_optim=_ADAM_DCGAN,
        g_optim=_ADAM_DCGAN,
        epochs=9,
    ),
    # The style-based model (training/style/): StyleGAN2's G and residual D on the emoji data set,
    # 32x32 RGB, conditional on the Unicode group. Small-data recipe: DiffAugment on all D sees and
    # mirrored reals, R1 (lazy, every 16th D update), an EMA of G (half-life ~10k images, as in
    # StyleGAN2-ADA), Adam with beta1 0. Measured here: ~0.75 s a step of 32 on 2 CPU cores, so its
    # 600 epochs (~55k steps) run for many hours, resumably, across sessions (docs/RESULTS.md).
    "emoji-style": TrainConfig(
        preset="emoji-style",
        dataset="emoji",
        dataset_options={"size": 32},
        conditional=True,
        network=NetworkConfig(
            family="style",
            sample_shape=(3, 32, 32),
            latent=LatentConfig(256, "normal"),
            output="sigmoid",
            w_dim=256,
            mapping_layers=2,
            style_channels=(256, 128, 64, 32),
            style_d_channels=(256, 128, 64, 32),
        ),
        batch_size=32,
        d_optim=_ADAM_STYLE,
        g_optim=_ADAM_STYLE,
        d_r1_gamma=0.02,
        d_r1_every=16,
        augment="color,translation,cutout,xflip",
        g_ema_decay=0.998,
        epochs=600,
        grid_samples=72,
    ),
}


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value). Values are JSON where they parse (numbers, true, null,
    lists), else plain strings (paths)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{item}: an override is key=value")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return key.strip().split("."), value


def _set(data: dict, path: list[str], value: Any, free: bool) -> None:
    """Set data[path] = value; every key must exist, except inside a free-form mapping."""
    node = data
    for i, part in enumerate(path):
        where = ".".join(path[: i + 1])
        last = i == len(path) - 1
        if not isinstance(node, dict) or (part not in node and not (free and i == 1)):
            raise ConfigError(f"{where}: unknown key")
        if last:
            node[part] = value
        else:
            node = node[part]


def resolve(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A preset with `key=value` overrides applied, type-checked and made consistent with its data."""
    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown name {preset!r}; known: {', '.join(PRESETS)}")
    data = PRESETS[preset].to_dict()
    parsed = [parse_override(o) for o in overrides]
    # Changing the dataset drops the preset's options for the old one, before any option is set.
    for path, value in parsed:
        if path == ["dataset"] and value != data["dataset"]:
            data["dataset"], data["dataset_options"] = value, {}
    for path, value in parsed:
        _set(data, path, value, free=path[0] == "dataset_options")
    cfg = TrainConfig.from_dict(data)
    return fit_to_data(cfg)


def fit_to_data(cfg: TrainConfig) -> TrainConfig:
    """Check the dataset and its options, and give the networks the data's sample shape."""
    try:
        options = check_options(cfg.dataset, cfg.dataset_options)
        info = dataset_info(cfg.dataset, **options)
    except DataError as e:
        raise ConfigError(str(e)) from None
    net = cfg.network
    if info.kind == "image":
        want = _OUTPUT_FOR_RANGE.get(tuple(info.value_range))
        check_field(
            net.output == want,
            "network.output",
            f"{net.output!r} does not produce {cfg.dataset}'s range {info.value_range}; use {want!r}",
        )
    elif net.output != "linear":
        lo, hi = net.value_range
        check_field(
            lo <= info.value_range[0] and info.value_range[1] <= hi,
            "network.output",
            f"{net.output!r} cannot reach {cfg.dataset}'s range {info.value_range}; use 'linear'",
        )
    check_field(
        not cfg.g_bias_from_data or tuple(info.value_range) == (0.0, 1.0), "g_bias_from_data", "only for data in [0, 1]"
    )
    classes = 0
    if cfg.conditional:
        check_field(
            len(info.class_names) >= 2,
            "conditional",
            f"{cfg.dataset} has no class labels; a conditional run needs a labelled dataset",
        )
        classes = len(info.class_names)
    try:
        net = replace(net, sample_shape=tuple(info.sample_shape), classes=classes)
    except ValueError as e:
        raise ConfigError(f"network: {e} (the dataset's samples are {info.sample_shape})") from None
    return replace(cfg, network=net, dataset_options=options)
