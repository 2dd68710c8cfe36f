"""A toy1d run that keeps every epoch's checkpoint, read back as (step, G, D) states with p_g.

Figure 1 and Theorem 1 both look at how one run evolves; they share this run (and its folder) so
the CPU trains it once. Every checkpoint is kept by the override `keep_checkpoints=1000`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from training.checkpoint import checkpoint_dirs, load_checkpoint, load_weights
from training.config import TrainConfig
from training.data.toy import TOY1D_MEAN, TOY1D_STD, toy1d_density
from training.evaluation.density1d import jsd, kde
from training.networks import build_discriminator, build_generator, sample_latent
from training.presets import resolve

KEEP_ALL = "keep_checkpoints=1000"
GRID = np.linspace(TOY1D_MEAN - 8 * TOY1D_STD, TOY1D_MEAN + 8 * TOY1D_STD, 1601)
KDE_SAMPLES = 50_000


@dataclass
class State:
    step: int
    epoch: int
    G: torch.nn.Module
    D: torch.nn.Module
    config: TrainConfig

    def samples(self, n: int = KDE_SAMPLES, seed: int = 7) -> np.ndarray:
        with torch.no_grad():
            z = sample_latent(self.config.network.latent, n, torch.Generator().manual_seed(seed))  # (n, z_dim)
            return self.G(z).numpy().reshape(-1)  # (n,)

    def p_g(self, grid: np.ndarray = GRID) -> np.ndarray:
        return kde(self.samples(), grid)

    def d_prob(self, grid: np.ndarray = GRID) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(self.D(torch.from_numpy(grid).float()[:, None])).numpy().reshape(-1)

    def jsd(self) -> float:
        return jsd(toy1d_density(GRID), self.p_g(), float(GRID[1] - GRID[0]))


def ensure_run(run_dir: Path, overrides: list[str] = (), max_steps: Optional[int] = None) -> Path:
    """Train toy1d into run_dir keeping every checkpoint (resumes, or does nothing, when it exists)."""
    from training.trainer import train

    cfg = resolve("toy1d", [*overrides, KEEP_ALL])
    return train(cfg, run_dir, max_steps=max_steps)


def states(run_dir: Path) -> list[State]:
    out = []
    for path in checkpoint_dirs(run_dir):
        ck = load_checkpoint(path)
        g, d = build_generator(ck.config.network), build_discriminator(ck.config.network)
        load_weights(g, ck.generator, path)
        load_weights(d, ck.discriminator, path)
        out.append(State(ck.step, ck.epoch, g.eval(), d.eval(), ck.config))
    if not out:
        raise FileNotFoundError(f"{run_dir}: no checkpoints; train it first (python -m training.paper.figure1 --train)")
    return out
