"""Resuming a run: what a checkpoint holds of the training loop besides the networks (its
position in the data, the epoch's running sums, every random generator's state), and the check
that a folder's run is the run being asked for. training/checkpoint.py writes and reads the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from training.checkpoint import load_checkpoint, load_weights, save_checkpoint
from training.config import TrainConfig
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.trainer import TrainingRun

# Keys of the config that may change when a run is resumed (they do not change what was trained).
# g_ema_decay changes only the running average of G's weights that ships, never G, D or the game;
# a resumed run with a new decay averages on from the average it saved.
RESUMABLE_CHANGES = {"epochs", "keep_checkpoints", "device", "g_ema_decay"}


def check_same_run(saved: TrainConfig, config: TrainConfig, out_dir: Path) -> None:
    a, b = saved.to_dict(), config.to_dict()
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)
    if differ:
        raise TrainingError(
            f"{out_dir}: holds a run with a different config ({', '.join(differ)} differ); "
            "use a new --out, or the same settings to resume"
        )


def save_run(run: TrainingRun) -> Path:
    """A checkpoint of the run: its networks, optimizers and EMA, and the loop's position, sums
    and random generators, so that a resumed run continues bit for bit on the CPU."""
    loop = {"pos": run.pos, "sums": run.sums, "has_perm": run.perm is not None}
    tensors = {
        "data_gen": run.data_gen.get_state(),
        "noise_gen": run.noise_gen.get_state(),
        "torch_cpu": torch.get_rng_state(),
    }
    if run.perm is not None:
        tensors["perm"] = run.perm
    if run.device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(run.device)
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


def restore_run(run: TrainingRun, path: Path) -> None:
    """The run as the checkpoint at `path` left it; TrainingError if it holds another run."""
    ckpt = load_checkpoint(path)
    check_same_run(ckpt.config, run.config, run.out_dir)
    load_weights(run.G, ckpt.generator, path / "generator.safetensors")
    load_weights(run.D, ckpt.discriminator, path / "discriminator.safetensors")
    run.start_ema()
    if run.G_ema is not None:
        if ckpt.generator_ema is None:
            raise TrainingError(f"{path}: no generator_ema.safetensors, but the config averages G's weights")
        load_weights(run.G_ema, ckpt.generator_ema, path / "generator_ema.safetensors")
    run.opt_d.load_state_dict(ckpt.optim_d)
    run.opt_g.load_state_dict(ckpt.optim_g)
    run.step, run.epoch, run.wall = ckpt.step, ckpt.epoch, ckpt.wall_time_s
    run.pos, run.sums = ckpt.loop["pos"], ckpt.loop["sums"]
    t = ckpt.loop_tensors
    run.perm = t["perm"] if ckpt.loop["has_perm"] else None
    run.data_gen.set_state(t["data_gen"])
    run.noise_gen.set_state(t["noise_gen"])
    torch.set_rng_state(t["torch_cpu"])
    if run.device.type == "cuda" and "torch_cuda" in t:
        torch.cuda.set_rng_state(t["torch_cuda"], run.device)
