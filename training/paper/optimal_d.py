"""Training a fresh D to convergence against a fixed G: the inner maximisation max_D V(G, D) that
Proposition 1 solves in closed form and Theorem 1 evaluates.

V(G, D) = E_x~p_data[log D(x)] + E_z[log(1 - D(G(z)))], D = sigmoid(logit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.networks import LatentConfig, NetworkConfig, build_discriminator

# draw(n, generator) -> (n, d) samples
Draw = Callable[[int, torch.Generator], torch.Tensor]


class Standardize(nn.Module):
    """(x - center) / scale before D, so one D recipe fits data at any location and scale."""

    def __init__(self, center: float, scale: float, inner: nn.Module):
        super().__init__()
        self.center, self.scale, self.inner = center, scale, inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x - self.center) / self.scale)  # (N, 1) logits


def fresh_discriminator(dim: int, center: float, scale: float, hidden=(64, 64), seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = NetworkConfig(
        family="mlp",
        sample_shape=(dim,),
        latent=LatentConfig(1, "normal"),
        output="linear",
        g_hidden=(8,),
        d_hidden=tuple(hidden),
        d_pieces=1,
        d_input_dropout=0.0,
        d_hidden_dropout=0.0,
        g_init_scale=None,
        d_init_scale=None,
    )
    return Standardize(center, scale, build_discriminator(cfg))


def value(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    """V(G, D) estimated on the given samples (nats)."""
    with torch.no_grad():
        # log D(x) = -softplus(-logit); log(1 - D(x)) = -softplus(logit)
        return float(-F.softplus(-D(real)).mean() - F.softplus(D(fake)).mean())


def fit_discriminator(
    D: nn.Module,
    draw_real: Draw,
    draw_fake: Draw,
    *,
    steps: int = 2000,
    batch: int = 2048,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    """Maximise V(G, D) over D with fresh samples every step (no overfitting to a fixed set) and a
    cosine-decayed learning rate, so the last iterates settle at the optimum instead of jittering."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(D.parameters(), lr=lr)
    D.train()
    for step in tqdm(range(steps), desc="fit D", unit="step", disable=not progress, leave=False):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        real, fake = draw_real(batch, gen), draw_fake(batch, gen)  # (batch, d) each
        loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()  # -V(G, D)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return D.eval()


def probability(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """D(x) as a probability: the one place these scripts apply the sigmoid."""
    with torch.no_grad():
        return torch.sigmoid(D(x)).reshape(-1)  # (N,)
