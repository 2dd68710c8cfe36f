"""Training on several processes with torch.distributed, started by torchrun (no scheduler of ours):

    torchrun --nproc-per-node K -m training train --preset NAME --out DIR
    torchrun --nnodes N --nproc-per-node K --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m training train ...

torchrun tells each process who it is through RANK, WORLD_SIZE and LOCAL_RANK; without them (or with
WORLD_SIZE 1) the run is the plain single process and nothing here talks to anyone. The process
group is gloo on the CPU and nccl on CUDA, each process on its own GPU (cuda:LOCAL_RANK).

What every rank must agree on, and how (docs/DESIGN.md, "Training on several processes"):
- the global batch is the preset's batch_size; each rank takes batch_size / K of it;
- the initial weights: every rank builds them from the config's seed (and DDP broadcasts rank 0's
  anyway); the data order and the latents are drawn for the global batch on every rank, each
  taking its own rows, so K ranks see exactly the batch one process would;
- torch's global generator (dropout, augmentation, style mixing) is seeded per rank, so ranks do
  not draw the same augmentation for their different images;
- the checkpoint to resume from: rank 0 reads it and sends it to the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from training.errors import TrainingError

T = TypeVar("T")

# Torch's global generator on rank r > 0 starts from seed + RANK_SEED_STRIDE * r: not seed + r,
# which would replay the data and noise generators' streams (seeded seed + 1, seed + 2) there.
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Ranks:
    """Who this process is in the run: rank of world processes, local_rank on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    restart: int = 0  # torchrun's restart count (TORCHELASTIC_RESTART_COUNT): 0 on the first attempt

    @property
    def main(self) -> bool:
        """The one rank that writes checkpoints, metrics, grids and config.json."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def label(self) -> str:
        return f"rank {self.rank}/{self.world}" if self.distributed else ""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise TrainingError(f"{name}: expected an integer from torchrun, got {value!r}") from None


def from_env() -> Ranks:
    """This process's place in a torchrun launch (RANK, WORLD_SIZE, LOCAL_RANK), or the single process."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise TrainingError(f"RANK {rank} / WORLD_SIZE {world}: not a rank of the world")
    return Ranks(rank, world, _env_int("LOCAL_RANK", rank), _env_int("TORCHELASTIC_RESTART_COUNT", 0))


def current() -> Ranks:
    """The ranks of the initialised process group, or the single process when there is none."""
    if dist.is_available() and dist.is_initialized():
        env = from_env()
        return Ranks(dist.get_rank(), dist.get_world_size(), env.local_rank, env.restart)
    return Ranks()


def pick_device(name: str, ranks: Ranks) -> torch.device:
    """The config's device for this rank: 'auto' is CUDA where torch sees it; on CUDA each process of
    a node takes its own GPU, cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainingError("device: 'cuda' asked for, but torch sees no CUDA device")
    if not ranks.distributed:
        return torch.device("cuda")  # the current device, as a single process always had it
    count = torch.cuda.device_count()
    if ranks.local_rank >= count:
        raise TrainingError(
            f"LOCAL_RANK {ranks.local_rank}: this node has {count} GPU(s); start at most {count} processes per node"
        )
    return torch.device("cuda", ranks.local_rank)


def per_rank_batch(config, world: int) -> int:
    """batch_size is the global batch; each of `world` ranks takes batch_size / world of it, and a
    packed D packs inside each rank's part."""
    m, pack = config.batch_size, config.network.d_pack
    if m % world:
        raise TrainingError(
            f"batch_size: {config.preset}'s global batch of {m} does not split over {world} processes; "
            f"use --set batch_size=N with N a multiple of {world}, or another number of processes"
        )
    if (m // world) % pack:
        raise TrainingError(
            f"batch_size: {config.preset}'s global batch of {m} gives {m // world} per process on {world} "
            f"processes, not a multiple of network.d_pack ({pack}); use a multiple of {world * pack}"
        )
    return m // world


def rank_seed(seed: int, rank: int) -> int:
    return seed + RANK_SEED_STRIDE * rank


@contextmanager
def process_group(device_name: str) -> Iterator[Ranks]:
    """Join torchrun's process group for the life of a command (gloo on the CPU, nccl on CUDA) and
    leave it after; the single process joins nothing."""
    ranks = from_env()
    if not ranks.distributed:
        yield ranks
        return
    device = pick_device(device_name, ranks)
    backend = "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "nccl"
    dist.init_process_group(
        backend,
        store=_attempt_store(ranks),
        rank=ranks.rank,
        world_size=ranks.world,
        device_id=device if device.type == "cuda" else None,
    )
    try:
        yield current()
        # Leave together, once every rank is done (rank 0 writes the last checkpoint after the
        # others have nothing left to do); only on success: after an error a rank may never come.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _attempt_store(ranks: Ranks) -> Optional[dist.Store]:
    """The rendezvous store of this attempt of the run. torchrun's agent hosts one TCP store for all
    its attempts (TORCHELASTIC_USE_AGENT_STORE), and the process group's keys carry no attempt in
    their names: after a restart, gloo would read the dead attempt's addresses and fail to connect
    ("connectFullMesh failed ... Connection refused"). So every attempt keys its own part of it.
    None (torch's env:// default) where the agent's store is not shared."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    server = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size=ranks.world, is_master=False
    )
    return dist.PrefixStore(f"ganserve/attempt-{ranks.restart}", server)


def backend() -> str:
    return str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else "none"


def wrap(module: nn.Module, device: torch.device, ranks: Ranks) -> nn.Module:
    """DistributedDataParallel around `module` (it averages the gradients of every backward over the
    ranks), or the module itself for a single process. All its parameters must take part in each
    backward: true of every objective here, so the cheaper find_unused_parameters=False holds."""
    if not ranks.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def all_mean(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean over ranks of a small tensor (each rank's batch means, so: the global batch's). A NaN
    or inf on any rank makes the result non-finite on every rank, which is how they stop together."""
    if not ranks.distributed:
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ranks.world


def all_gather(obj: T, ranks: Ranks) -> list[T]:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not ranks.distributed:
        return [obj]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def from_main(make: Callable[[], T], ranks: Ranks) -> T:
    """`make()` run on rank 0 only, its result sent to every rank. An exception it raises is raised
    on every rank, so no rank waits for a value that will never come."""
    if not ranks.distributed:
        return make()
    box: list[Any] = [None]
    if ranks.main:
        try:
            box[0] = ("ok", make())
        except Exception as e:  # re-raised on every rank just below
            box[0] = ("error", e)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value
