"""Which training samples each rank takes: torch's DistributedSampler, one pass of the data at a time.

Pass p is a permutation of the training set seeded with seed + p (DistributedSampler.set_epoch(p));
rank r of K holds every K-th index of it from r. Each rank then takes its next batch_size / K
indices per D update, so the K ranks' batches of update b are together positions b*m .. (b+1)*m - 1
of the permutation, rank r holding rows r, r + K, r + 2K, ... of them: the batch a single process
(K = 1) takes at update b. A pass ends when the next global batch would run past the indices the
ranks share (floor(N / K) * K), which leaves the same number of whole batches per pass as one
process has, floor(N / m).

The order is a function of (seed, pass) alone, so a checkpoint only records the pass and the
position in it, and a run may resume on another number of processes.
"""

from __future__ import annotations

import torch
from torch.utils.data.distributed import DistributedSampler


class PassOrder:
    """Rank `rank` of `world`'s share of every pass over `n` training samples."""

    def __init__(self, n: int, rank: int, world: int, seed: int):
        # drop_last: the tail of a permutation that does not split evenly is left out (padding would
        # repeat samples); a pass's last partial batch is dropped anyway.
        self.sampler = DistributedSampler(
            range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.world = world
        self.usable = self.sampler.num_samples * world  # indices the ranks share in every pass

    def shard(self, pass_index: int) -> torch.Tensor:
        """This rank's indices of pass `pass_index`, int64 (usable / world,)."""
        self.sampler.set_epoch(pass_index)
        return torch.tensor(list(self.sampler), dtype=torch.int64)
