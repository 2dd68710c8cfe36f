"""Resuming a run: what a checkpoint holds of the training loop besides the networks (its
position in the data, the epoch's running sums, every random generator's state, on every rank,
and fp16's loss scales), and the check that a folder's run is the run being asked for.
training/checkpoint.py writes and reads the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

from training import distributed
from training.checkpoint import Checkpoint, load_weights, save_checkpoint, step_dir
from training.config import TrainConfig
from training.divergence import check_weights
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.trainer import TrainingRun

# Keys of the config that may change when a run is resumed (they do not change what was trained).
# g_ema_decay changes only the running average of G's weights that ships, never G, D or the game;
# a resumed run with a new decay averages on from the average it saved. precision is not among them:
# the exported card records one precision for the whole run. The number of processes is no config
# key at all: the data order and latents do not depend on it, so a run may resume on another.
RESUMABLE_CHANGES = {"epochs", "keep_checkpoints", "device", "g_ema_decay"}


def check_same_run(saved: TrainConfig, config: TrainConfig, out_dir: Path) -> None:
    a, b = saved.to_dict(), config.to_dict()
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)
    if differ:
        raise TrainingError(
            f"{out_dir}: holds a run with a different config ({', '.join(differ)} differ); "
            "use a new --out, or the same settings to resume"
        )


def _rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    states = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["torch_cuda"] = torch.cuda.get_rng_state(device)
    return states


def _rank_key(name: str, rank: int) -> str:
    """Rank 0's generator state keeps the single-process name, so older checkpoints read the same."""
    return name if rank == 0 else f"{name}.rank{rank}"


def save_run(run: TrainingRun) -> Optional[Path]:
    """A checkpoint of the run: its networks, optimizers, loss scales and EMA, and the loop's
    position, sums and random generators (every rank's torch generator), so that a resumed run
    continues bit for bit on the CPU. Every rank calls it (the weights are checked across ranks
    and the generators gathered); rank 0 writes. Returns the checkpoint on rank 0."""
    where = f"step {run.step}, epoch {run.epoch}"
    check_weights({"G": run.G, "D": run.D}, where, run.ranks, run.last_checkpoint)
    states = distributed.all_gather(_rng_states(run.device), run.ranks)
    run.last_checkpoint = step_dir(run.out_dir, run.step)
    if not run.ranks.main:
        return None
    loop = {
        "pos": run.pos,
        "sums": run.sums,
        "pass": run.pass_index,
        "has_shard": run.shard is not None,
        "world_size": run.ranks.world,
        "scalers": {"d": run.scaler_d.state_dict(), "g": run.scaler_g.state_dict()},
    }
    tensors = {"noise_gen": run.noise_gen.get_state()}
    for rank, rank_states in enumerate(states):
        tensors.update({_rank_key(name, rank): state for name, state in rank_states.items()})
    return save_checkpoint(
        run.out_dir,
        config=run.config,
        generator=run.G,
        discriminator=run.D,
        optim_d=run.opt_d,
        optim_g=run.opt_g,
        step=run.step,
        epoch=run.epoch,
        wall_time_s=run.wall,
        loop=loop,
        loop_tensors=tensors,
        generator_ema=run.G_ema,
    )


def restore_run(run: TrainingRun, ckpt: Checkpoint) -> None:
    """The run as checkpoint `ckpt` left it; TrainingError if it holds another run. Every rank
    restores from the same checkpoint (rank 0 read it and sent it)."""
    path = ckpt.path
    check_same_run(ckpt.config, run.config, run.out_dir)
    load_weights(run.G, ckpt.generator, path / "generator.safetensors")
    load_weights(run.D, ckpt.discriminator, path / "discriminator.safetensors")
    if run.config.g_ema_decay > 0 and ckpt.generator_ema is None:
        raise TrainingError(f"{path}: no generator_ema.safetensors, but the config averages G's weights")
    run.start_ema()
    if run.G_ema is not None:
        load_weights(run.G_ema, ckpt.generator_ema, path / "generator_ema.safetensors")
    run.opt_d.load_state_dict(ckpt.optim_d)
    run.opt_g.load_state_dict(ckpt.optim_g)
    run.step, run.epoch, run.wall = ckpt.step, ckpt.epoch, ckpt.wall_time_s
    loop, t = ckpt.loop, ckpt.loop_tensors
    run.pos, run.sums = loop["pos"], loop["sums"]
    if "pass" in loop:
        run.pass_index, mid_pass = loop["pass"], loop["has_shard"]
    else:
        # A checkpoint from before the DistributedSampler (it kept its own permutation): the pass in
        # progress goes on in the sampler's order from the same position, so the rest of that one
        # pass may repeat a few samples and miss as many.
        run.pass_index, mid_pass = ckpt.epoch, loop["has_perm"]
    run.shard = run.order.shard(run.pass_index).to(run.device) if mid_pass else None
    run.noise_gen.set_state(t["noise_gen"])
    rank = run.ranks.rank
    if _rank_key("torch_cpu", rank) in t:
        torch.set_rng_state(t[_rank_key("torch_cpu", rank)])
    else:  # saved by fewer processes than resume it: a stream of its own, still reproducible
        torch.manual_seed(distributed.rank_seed(run.config.seed + run.step, rank))
    if run.device.type == "cuda" and _rank_key("torch_cuda", rank) in t:
        torch.cuda.set_rng_state(t[_rank_key("torch_cuda", rank)], run.device)
    scalers = loop.get("scalers", {})
    run.scaler_d.load_state_dict(scalers.get("d"))
    run.scaler_g.load_state_dict(scalers.get("g"))
    run.last_checkpoint = path
