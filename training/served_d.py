"""The served D as a torch module, for calibration (calibrate.py): rebuilt from discriminator.onnx's
initializers, scored on numpy arrays (with a conditional D's classes), measured on held-out data,
and a Platt fit of its logit folded into its last layer (and a projection head's class embedding)."""

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


def _served_module(net_cfg) -> nn.Module:
    """The torch module export turns into discriminator.onnx for this config."""
    d = build_discriminator(net_cfg)
    return PerSampleDiscriminator(d) if net_cfg.d_pack > 1 else d


def load_discriminator(path: Path, net_cfg) -> nn.Module:
    """The torch D with the weights of `path`: initializers matched to parameters by name and shape.
    Raises CalibrationError when they do not map (another exporter, another network)."""
    module = _served_module(net_cfg)
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


def _d(module: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    return module(x) if c is None else module(x, c)


def _logits(module: nn.Module, x: np.ndarray, c: np.ndarray | None = None, batch: int = 2000) -> np.ndarray:
    """D's logits (n,) of x (n, *shape) and, for a conditional D, their classes c (n,) int64."""
    module.eval()
    with torch.no_grad():
        return torch.cat([_d(module, torch.from_numpy(x[i : i + batch]), None if c is None else torch.from_numpy(c[i : i + batch]))
                          for i in range(0, len(x), batch)]).numpy().ravel()


# A held-out set is (x, c): samples and, for a conditional model, their classes (else None).
def _measure(module: nn.Module, real: tuple, fake: tuple) -> dict:
    lr, lf = _logits(module, *real), _logits(module, *fake)
    bins, ece = cal.reliability(lr, lf)
    return {"auc": cal.auc(lr, lf), "ece": ece, "reliability": bins, "real": lr, "fake": lf}


def _held_out_loss(module: nn.Module, real: tuple, fake: tuple) -> float:
    lr, lf = torch.from_numpy(_logits(module, *real)), torch.from_numpy(_logits(module, *fake))
    return float(F.softplus(-lr).mean() + F.softplus(lf).mean())


def _final_linear(module: nn.Module) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears or linears[-1].out_features != 1:
        raise CalibrationError("D's last layer is not a one-logit linear layer; cannot fold the Platt fit (--no-platt)")
    return linears[-1]


def _fold_target(module: nn.Module) -> tuple[nn.Linear, nn.Embedding | None]:
    """Where a Platt fit a * logit + b goes: the last linear layer, and a projection D's class
    embedding (its logit is psi(h) + <e_c, h>, so both terms scale by a; b joins psi's bias)."""
    condition = getattr(module, "condition", None)
    if condition is None:
        return _final_linear(module), None
    if not (isinstance(module.head, nn.Linear) and module.head.out_features == 1):
        raise CalibrationError("this conditional D's head is not a one-logit linear layer; cannot fold the Platt fit (--no-platt)")
    return module.head, module.embed if condition == "projection" else None


def _platt(module: nn.Module, real: tuple, fake: tuple) -> tuple[float, float]:
    """Fit logit' = a * logit + b on held-out data (logistic regression on one feature) and fold it
    into D's last linear layer (and a projection D's class embedding), so the graph keeps its shape."""
    lr, lf = _logits(module, *real), _logits(module, *fake)
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
    last, embed = _fold_target(module)
    with torch.no_grad():
        last.weight.mul_(a)
        last.bias.mul_(a).add_(b)
        if embed is not None:
            embed.weight.mul_(a)
    return a, b
