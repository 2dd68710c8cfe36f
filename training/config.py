"""Training configuration: the typed dataclasses a run is made of, and their checks. The named
presets and `--set key=value` overrides that make one are in presets.py. A run's resolved config is
written next to its outputs and into every checkpoint, so everything downstream (resume, export,
evaluation) rebuilds the run from it alone.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from training import augment
from training.losses import G_LOSSES, GLoss
from training.networks import NetworkConfig
from training.precision import Precision


class ConfigError(ValueError):
    """A bad preset, key or value; the message starts with the key at fault."""


@dataclass(frozen=True)
class OptimConfig:
    """One network's optimiser and its schedule (the paper's SGD recipe or Adam)."""

    kind: Literal["sgd", "adam"] = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # adam
    momentum: float = 0.0  # sgd: momentum at epoch 0
    final_momentum: Optional[float] = None  # sgd: reached linearly at `momentum_epochs`
    momentum_epochs: int = 0
    lr_decay: float = 1.0  # lr is divided by this after every update of this optimiser
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        check_field(self.lr > 0, "lr", "must be > 0")
        check_field(self.lr_decay >= 1.0, "lr_decay", "must be >= 1 (a divisor per update)")
        check_field(0 <= self.min_lr <= self.lr, "min_lr", "must be in [0, lr]")
        check_field(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        check_field(self.final_momentum is None or 0 <= self.final_momentum < 1, "final_momentum", "must be in [0, 1)")
        check_field(self.momentum_epochs >= 0, "momentum_epochs", "must be >= 0")
        check_field(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    preset: str
    seed: int = 0
    dataset: str = "mnist5k"
    dataset_options: dict = field(default_factory=dict)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    batch_size: int = 100  # m in Algorithm 1
    d_steps: int = 1  # k in Algorithm 1: D updates per G update
    g_loss: GLoss = "non_saturating"
    # Train p(x | c): G and D take the dataset's class labels (network.classes is set from the data).
    conditional: bool = False
    # R1 gradient penalty weight on real data (0 = the paper's plain objective). See losses.r1_penalty.
    d_r1_gamma: float = 0.0
    # Lazy regularisation (Karras et al. 2020): R1 on every d_r1_every-th D update, weighted by
    # d_r1_every, which costs ~1/d_r1_every of the double backward and trains the same.
    d_r1_every: int = 1
    # Augmentation for small data (training/augment.py): "color,translation,cutout" for every image
    # D sees (DiffAugment), "xflip" for the real images only; "" = none.
    augment: str = ""
    # Keep an exponential moving average of G's weights (Yazici et al. 2019) and ship it; 0 = off.
    # Averaging cancels the oscillation of G around the equilibrium that shows as speckled samples.
    g_ema_decay: float = 0.0
    d_optim: OptimConfig = field(default_factory=OptimConfig)
    g_optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 100  # passes of D's minibatches over the training split
    # Start G's output at the data's mean (the paper's MNIST code); only for data in [0, 1].
    g_bias_from_data: bool = False
    grid_samples: int = 100
    keep_checkpoints: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Mixed precision (training/precision.py): autocast to bf16 or fp16 (CUDA only, with loss
    # scaling) in the forward passes. fp32 unless asked, on every device; not changed by a resume.
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        for name in ("batch_size", "d_steps", "epochs", "grid_samples", "keep_checkpoints", "d_r1_every"):
            check_field(getattr(self, name) >= 1, name, "must be >= 1")
        check_field(self.d_r1_gamma >= 0, "d_r1_gamma", "must be >= 0")
        check_field(0 <= self.g_ema_decay < 1, "g_ema_decay", "must be in [0, 1)")
        try:
            augment.parse(self.augment)
        except ValueError as e:
            raise ConfigError(f"augment: {e}") from None
        check_field(self.g_loss in G_LOSSES, "g_loss", f"must be one of {', '.join(G_LOSSES)}")
        # D's packs are formed inside each minibatch of real (and of fake) samples.
        check_field(
            self.batch_size % self.network.d_pack == 0,
            "batch_size",
            f"{self.batch_size} is not a multiple of network.d_pack ({self.network.d_pack})",
        )

    def to_dict(self) -> dict:
        """Plain JSON-able data (tuples become lists); `from_dict` reads it back exactly."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return _build(cls, data, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def check_field(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {problem}")


# ---- typed construction from plain data (config files, checkpoints and --set overrides) ----

# Scalar config types: what the error calls them, which values they accept (bool is an int in
# Python, but true is no integer here), and how an accepted value is stored.
SCALARS = {
    bool: ("true or false", lambda v: isinstance(v, bool), lambda v: v),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool), lambda v: v),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float),
    str: ("a string", lambda v: isinstance(v, str), lambda v: v),
}


def _coerce(typ: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {typ.__name__} fields, got {value!r}")
        return _build(typ, value, key + ".")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is tuple:
        if isinstance(value, str) and "," in value:  # `--set network.g_hidden=64,64`
            value = [json.loads(v) for v in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if typ is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if typ in SCALARS:
        what, accepts, convert = SCALARS[typ]
        if not accepts(value):
            raise ConfigError(f"{key}: expected {what}, got {value!r}")
        return convert(value)
    raise ConfigError(f"{key}: unsupported type {typ!r}")


def _build(cls: type, data: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None
    except (ValueError, TypeError) as e:  # NetworkConfig's own checks name their field
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None
