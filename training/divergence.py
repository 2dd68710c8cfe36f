"""Stopping a run that diverged, before anything non-finite is applied or saved.

Each D update and each G update checks its losses before the backward pass, with one isfinite on a
small stacked tensor that is first averaged over the ranks: a NaN or inf on any rank makes the mean
non-finite on all of them, so every rank stops at the same update, and none waits in a collective
for a rank that has left. The error names the step, the loss (d_loss, r1 or g_loss) and the last
good checkpoint, which is kept: the run writes nothing after the failing step. Weights are checked
too before each checkpoint (an overflow in an update can leave them non-finite behind a finite loss),
with the same sums that show the ranks still hold the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from training import distributed
from training.distributed import Ranks
from training.errors import TrainingError

HINT = "the run diverged (lower the learning rate or check the data)"


def kept_note(checkpoint: Optional[Path]) -> str:
    if checkpoint is None:
        return "no checkpoint was written"
    return f"its last good checkpoint, {checkpoint.parent.name}/{checkpoint.name}, is kept"


def reduce_and_check(
    values: torch.Tensor, names: tuple[str, ...], where: str, ranks: Ranks, checkpoint: Optional[Path]
) -> list[float]:
    """The mean over ranks of `values` (1-D; the first len(names) are checked, named by `names`) as
    floats; a TrainingError on every rank when any checked one is NaN or inf on any rank."""
    mean = distributed.all_mean(values, ranks).tolist()
    for name, value in zip(names, mean):
        if not math.isfinite(value):
            over = f" (the mean over {ranks.world} processes)" if ranks.distributed else ""
            raise TrainingError(f"{where}: {name} is {value}{over}; {HINT}; {kept_note(checkpoint)}")
    return mean


def weight_sums(modules: Iterable[tuple[str, nn.Module]]) -> torch.Tensor:
    """One float64 sum per parameter tensor, in a fixed order (on the CPU)."""
    return torch.stack([p.detach().double().sum().cpu() for _, m in modules for p in m.parameters()])


def check_weights(modules: dict[str, nn.Module], where: str, ranks: Ranks, checkpoint: Optional[Path]) -> None:
    """Before a checkpoint: every weight finite, and (with several ranks) every rank's weights the
    same, which DDP's averaged gradients and identical optimiser steps keep exactly."""
    mine = weight_sums(modules.items())  # once: the finite check below and the ranks' comparison
    counts = [sum(1 for _ in module.parameters()) for module in modules.values()]
    for name, part in zip(modules, torch.split(mine, counts)):
        if not torch.isfinite(part).all():
            raise TrainingError(f"{where}: {name}'s weights are not finite; {HINT}; {kept_note(checkpoint)}")
    if not ranks.distributed:
        return
    sums = distributed.all_gather(mine, ranks)
    for rank, other in enumerate(sums[1:], start=1):
        if not torch.equal(other, sums[0]):
            raise TrainingError(
                f"{where}: rank {rank}'s weights differ from rank 0's (largest difference of a tensor's sum "
                f"{(other - sums[0]).abs().max().item():.3g}); the ranks fell out of step, not saving"
            )
