"""Checkpoints that load without unpickling anything: tensors in safetensors, the rest in JSON.

A run directory looks like

    RUN/config.json                  the resolved config (also inside every checkpoint)
    RUN/metrics.jsonl                one line per epoch
    RUN/grids/epoch-0001.png
    RUN/checkpoints/step-00000400/   generator / discriminator / optim_d / optim_g / loop .safetensors
                                     (+ generator_ema.safetensors when the run averages G's weights)
                                     + state.json (step, epoch, wall time, config, optimiser hyper-parameters)

A checkpoint folder is written under a temporary name and renamed when complete, so a crash never
leaves a half-written checkpoint that looks like the latest one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from training.config import ConfigError, TrainConfig
from training.networks import build_discriminator, build_generator

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
EMA_FILE = "generator_ema.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A missing or damaged checkpoint; the message names the file."""


@dataclass
class Checkpoint:
    """Everything one checkpoint holds, as plain tensors and JSON."""

    path: Path
    config: TrainConfig
    step: int
    epoch: int
    wall_time_s: float
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    generator_ema: dict[str, torch.Tensor] | None  # the running average of G's weights, if the run keeps one
    optim_d: dict[str, Any]  # an optimizer.state_dict(), rebuilt
    optim_g: dict[str, Any]
    loop: dict[str, Any]  # the trainer's own JSON state (data position, metric sums, loss scales)
    loop_tensors: dict[str, torch.Tensor]  # RNG states (every rank's)


@dataclass
class LoadedRun:
    config: TrainConfig
    generator: nn.Module  # eval mode; the weight average where the run keeps one (what ships)
    discriminator: nn.Module  # eval mode
    step: int
    epoch: int
    wall_time_s: float
    run_dir: Path


def split_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """optimizer.state_dict() -> (tensors for safetensors, the JSON-able rest)."""
    tensors, state_meta = {}, {}
    for idx, entries in sd["state"].items():
        meta = {}
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                meta[name] = value
        state_meta[str(idx)] = meta
    return tensors, {"state": state_meta, "param_groups": sd["param_groups"]}


def join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(m) for i, m in meta["state"].items()}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def save_checkpoint(
    run_dir: Path,
    *,
    config: TrainConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    optim_d: torch.optim.Optimizer,
    optim_g: torch.optim.Optimizer,
    step: int,
    epoch: int,
    wall_time_s: float,
    loop: dict,
    loop_tensors: dict[str, torch.Tensor],
    generator_ema: nn.Module | None = None,
) -> Path:
    """Write checkpoints/step-N atomically and keep only the newest `config.keep_checkpoints`."""
    final = step_dir(run_dir, step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_cpu(generator.state_dict()), str(tmp / "generator.safetensors"))
    save_file(_cpu(discriminator.state_dict()), str(tmp / "discriminator.safetensors"))
    if generator_ema is not None:
        save_file(_cpu(generator_ema.state_dict()), str(tmp / EMA_FILE))
    meta = {}
    for name, opt in (("optim_d", optim_d), ("optim_g", optim_g)):
        tensors, meta[name] = split_optimizer(opt.state_dict())
        save_file(tensors, str(tmp / f"{name}.safetensors"))
    save_file(_cpu(loop_tensors), str(tmp / "loop.safetensors"))
    state = {
        "format": FORMAT_VERSION,
        "step": step,
        "epoch": epoch,
        "wall_time_s": wall_time_s,
        "torch_version": torch.__version__,
        "config": config.to_dict(),
        "loop": loop,
        **meta,
    }
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    if final.exists():  # a rerun that reached the same step: the new one wins
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[: -config.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def step_dir(run_dir: Path | str, step: int) -> Path:
    """Where the checkpoint of `step` is (or would be) written."""
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"


def checkpoint_dirs(run_dir: Path | str) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path | str) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def load_checkpoint(path: Path | str) -> Checkpoint:
    path = Path(path)
    state_path = path / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{state_path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{state_path}: unreadable ({e})") from None
    try:
        if state.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{state_path}: format {state.get('format')!r}, expected {FORMAT_VERSION}")
        config = TrainConfig.from_dict(state["config"])
        optim = {n: join_optimizer(_tensors(path / f"{n}.safetensors"), state[n]) for n in ("optim_d", "optim_g")}
        return Checkpoint(
            path=path,
            config=config,
            step=int(state["step"]),
            epoch=int(state["epoch"]),
            wall_time_s=float(state["wall_time_s"]),
            generator=_tensors(path / "generator.safetensors"),
            discriminator=_tensors(path / "discriminator.safetensors"),
            generator_ema=_tensors(path / EMA_FILE) if (path / EMA_FILE).exists() else None,
            optim_d=optim["optim_d"],
            optim_g=optim["optim_g"],
            loop=state["loop"],
            loop_tensors=_tensors(path / "loop.safetensors"),
        )
    except KeyError as e:
        raise CheckpointError(f"{state_path}: missing the key {e}") from None
    except ConfigError as e:
        raise CheckpointError(f"{state_path}: bad config ({e})") from None


def load_weights(module: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{source}: weights do not fit the config's network ({first})") from None


def load_run(run_dir: Path | str) -> LoadedRun:
    """The latest checkpoint of a run, as networks in eval mode (on the CPU)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: not a directory")
    path = latest_checkpoint(run_dir)
    if path is None:
        raise CheckpointError(f"{run_dir / CHECKPOINTS}: no checkpoint (has this run trained a step?)")
    ckpt = load_checkpoint(path)
    g, d = build_generator(ckpt.config.network), build_discriminator(ckpt.config.network)
    if ckpt.generator_ema is not None:
        load_weights(g, ckpt.generator_ema, path / EMA_FILE)
    else:
        load_weights(g, ckpt.generator, path / "generator.safetensors")
    load_weights(d, ckpt.discriminator, path / "discriminator.safetensors")
    return LoadedRun(ckpt.config, g.eval(), d.eval(), ckpt.step, ckpt.epoch, ckpt.wall_time_s, run_dir)
