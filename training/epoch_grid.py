"""The sample grid a run writes at every epoch: the same latents each time, one row per class for a
conditional image model, a density plot beside the data for vectors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from training.grid import save_grid
from training.networks import sample_latent

if TYPE_CHECKING:
    from training.trainer import TrainingRun


@torch.no_grad()
def write_epoch_grid(run: TrainingRun, partial: bool = False) -> Path:
    """The run's sample grid for this epoch (or this step, when the run stopped mid-epoch), drawn by
    the G that export will ship."""
    # The same z every epoch (its own generator, so training's randomness is untouched).
    z_gen = torch.Generator().manual_seed(run.config.seed + 3)
    # A plot of vectors needs many points to show a density; a grid of images does not.
    n = run.config.grid_samples
    if len(run.config.network.sample_shape) != 3:
        n = max(n, 2000)
    ncol = None
    c = None
    if run.classes:
        if len(run.config.network.sample_shape) == 3:  # one row per class
            ncol = max(1, run.config.grid_samples // run.classes)
            n = ncol * run.classes
            c = torch.arange(run.classes).repeat_interleave(ncol)  # (n,) 0,0,..,1,1,..
        else:
            c = torch.arange(n) % run.classes  # (n,) balanced
        c = c.to(run.device)
    z = sample_latent(run.config.network.latent, n, z_gen).to(run.device)
    net = run.G_ema if run.G_ema is not None else run.G  # what export will ship
    was_training = net.training
    net.eval()
    samples = run.g(net, z, c).cpu().numpy()
    net.train(was_training)
    (run.out_dir / "grids").mkdir(exist_ok=True)
    name = f"step-{run.step:08d}.png" if partial else f"epoch-{run.epoch:04d}.png"
    ref = run.data[:2000].cpu().numpy() if samples.ndim == 2 else None
    rng = run.config.network.value_range or (0.0, 1.0)
    return save_grid(
        samples,
        run.out_dir / "grids" / name,
        rng,
        ref,
        title=f"{run.config.preset}, epoch {run.epoch}, step {run.step}",
        ncol=ncol,
        labels=c.cpu().numpy() if c is not None else None,
    )
