"""The served D as a torch module, for calibration (calibrate.py): rebuilt from discriminator.onnx's
initializers, scored on numpy arrays (with a conditional D's classes), measured on held-out data,
and a Platt fit of its logit folded into its last layer (and a projection head's class embedding;
where that layer has no bias, the shift is one Add after it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from training.evaluation import calibration as cal
from training.networks import PerSampleDiscriminator, build_discriminator


class CalibrationError(ValueError):
    """A calibration that cannot go ahead; the message names the file or option at fault."""


def served_module(net_cfg) -> nn.Module:
    """The torch module export turns into discriminator.onnx for this config."""
    d = build_discriminator(net_cfg)
    return PerSampleDiscriminator(d) if net_cfg.d_pack > 1 else d


def load_discriminator(path: Path, net_cfg) -> nn.Module:
    """The torch D with the weights of `path`: initializers matched to parameters by name and shape.
    Raises CalibrationError when they do not map (another exporter, another network)."""
    module = served_module(net_cfg)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = module.state_dict()
    missing = [k for k in state if k not in inits]
    if missing:
        raise CalibrationError(f"{path.name}: no initializer for {', '.join(missing[:3])} (names do not map)")
    for k, v in state.items():
        if tuple(inits[k].shape) != tuple(v.shape):
            raise CalibrationError(f"{path.name}: {k} is {inits[k].shape}, the network's is {tuple(v.shape)}")
    module.load_state_dict({k: torch.from_numpy(np.array(inits[k], dtype=np.float32)) for k in state})
    return module.eval()


def d_logit(module: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    return module(x) if c is None else module(x, c)


def logits_of(module: nn.Module, x: np.ndarray, c: np.ndarray | None = None, batch: int = 2000) -> np.ndarray:
    """D's logits (n,) of x (n, *shape) and, for a conditional D, their classes c (n,) int64."""
    module.eval()
    with torch.no_grad():
        return (
            torch.cat(
                [
                    d_logit(
                        module,
                        torch.from_numpy(x[i : i + batch]),
                        None if c is None else torch.from_numpy(c[i : i + batch]),
                    )
                    for i in range(0, len(x), batch)
                ]
            )
            .numpy()
            .ravel()
        )


# A held-out set is (x, c): samples and, for a conditional model, their classes (else None).
def measure(module: nn.Module, real: tuple, fake: tuple) -> dict:
    lr, lf = logits_of(module, *real), logits_of(module, *fake)
    bins, ece = cal.reliability(lr, lf)
    return {"auc": cal.auc(lr, lf), "ece": ece, "reliability": bins, "real": lr, "fake": lf}


def held_out_loss(module: nn.Module, real: tuple, fake: tuple) -> float:
    lr, lf = torch.from_numpy(logits_of(module, *real)), torch.from_numpy(logits_of(module, *fake))
    return float(F.softplus(-lr).mean() + F.softplus(lf).mean())


def _last_layer(module: nn.Module) -> nn.Linear | nn.Conv2d:
    """The layer that makes the logit: the last linear or convolution of `module`, one output."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    last = layers[-1] if layers else None
    if last is None or (last.out_features if isinstance(last, nn.Linear) else last.out_channels) != 1:
        raise CalibrationError(
            "D's last layer is not a one-logit linear or convolution layer; cannot fold the Platt fit (--no-platt)"
        )
    return last


def fold_target(module: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """Where a Platt fit a * logit + b goes: the last layer, and a projection D's class embedding
    (its logit is psi(h) + <e_c, h>, so both terms scale by a; b joins psi's bias). A last layer
    without a bias (the DCGAN D's convolution) takes the scale; the shift goes after it
    (`with_platt_shift`). A D with layers of its own kind (the style-based D's equalized
    linears) names them by `platt_layers()`."""
    own = getattr(module, "platt_layers", None)  # a D that names its logit's layers itself
    if own is not None:
        return own()
    condition = getattr(module, "condition", None)
    if condition is None:
        return _last_layer(module), None
    return _last_layer(module.head), module.embed if condition == "projection" else None


def has_intercept(module: nn.Module) -> bool:
    """Whether the Platt fit's shift b can be folded in (the last layer has a bias)."""
    return fold_target(module)[0].bias is not None


class LogitShift(nn.Module):
    """D with a constant added to its logit: where a Platt fit's shift b goes when D's last layer
    has no bias (the DCGAN D's convolution). Exported as one Add after it; the graph's signature
    (x, and c for a conditional D -> logit) is unchanged."""

    def __init__(self, inner: nn.Module, shift: float):
        super().__init__()
        self.inner = inner
        self.condition = getattr(inner, "condition", None)
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return d_logit(self.inner, x, c) + self.shift


def platt_fit(module: nn.Module, real: tuple, fake: tuple) -> tuple[float, float]:
    """Fit logit' = a * logit + b on held-out data (logistic regression on one feature) and fold it
    into D's last layer (and a projection D's class embedding), so the graph keeps its shape. A
    last layer without a bias takes a alone: b is for the caller to add (`with_platt_shift`)."""
    last, embed = fold_target(module)
    lr, lf = logits_of(module, *real), logits_of(module, *fake)
    x = torch.from_numpy(np.concatenate([lr, lf])).double()
    y = torch.cat([torch.ones(len(lr)), torch.zeros(len(lf))]).double()
    w = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(w[0] * x + w[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in w.detach())
    if not (a > 0 and np.isfinite(a) and np.isfinite(b)):
        return 1.0, 0.0  # a fit that flips or breaks the ordering is no calibration: keep D as is
    with torch.no_grad():
        last.weight.mul_(a)
        if last.bias is not None:
            # An equalized-learning-rate layer (training/style/layers.py) adds bias * lr_mul.
            last.bias.mul_(a).add_(b / getattr(last, "lr_mul", 1.0))
        if embed is not None:
            embed.weight.mul_(a)
            if getattr(embed, "bias", None) is not None:  # an EqualLinear embedding of the one-hot class
                embed.bias.mul_(a)
    return a, b


def with_platt_shift(module: nn.Module, b: float) -> nn.Module:
    """`module` after `platt_fit` returned (a, b): itself where b went into its last layer's bias,
    else wrapped so that its logit gains b."""
    return module if has_intercept(module) or b == 0 else LogitShift(module, b)
