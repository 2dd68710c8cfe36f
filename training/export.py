"""Export a trained G and D to a model folder `models/<name>/` that satisfies `models/card.py`.

The folder is built under a hidden temporary sibling and renamed into place only once every
check has passed (onnx.checker, an onnxruntime CPU session on the written file, parity with
torch at several batch sizes, the card re-read from disk and its hashes verified), so an
interrupted or failed export never leaves a folder that looks complete.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import uuid
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from models.card import (
    NAME_PATTERN,
    CardError,
    TrainingInfo,
)
from training.graph_export import build_folder
from training.networks import NetworkConfig, PerSampleDiscriminator
from training.onnx_io import OnnxExportError

TRAINING_KEYS = ("preset", "config", "steps", "wall_time_s", "seed")
RUN_METRICS_FILE = "metrics.json"  # what `python -m training evaluate RUN_DIR` writes into a run


def pack_note(pack: int) -> str:
    """The card's sentence for a packed D (the exported graph is not the network as trained)."""
    return (
        f"D was trained on packs of {pack} samples (PacGAN); discriminator.onnx scores each sample "
        f"as the pack of {pack} copies of itself."
    )


class ExportError(ValueError):
    """An export that cannot go ahead; the message names the argument or file at fault."""


def _frozen_copy(module: nn.Module) -> nn.Module:
    # A copy, so exporting never flips the caller's modules out of train mode; eval() turns
    # D's dropout off and makes batch norm use its running statistics.
    return copy.deepcopy(module).to("cpu", torch.float32).eval()


def _check_target(name: str, out_dir: Path, force: bool) -> Path:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ExportError(f"name: {name!r} is not a valid model name (lowercase letters, digits, '-', '_'; at most 64)")
    target = out_dir / name
    if target.exists() and not force:
        raise ExportError(f"{target}: a model folder already exists (pass --force to replace it)")
    return target


def _training_info(info: dict) -> TrainingInfo:
    missing = [k for k in TRAINING_KEYS if k not in info]
    if missing:
        raise ExportError(f"training_info: missing {', '.join(missing)}")
    return TrainingInfo(torch_version=torch.__version__, **{k: info[k] for k in TRAINING_KEYS})


def _move_into_place(staging: Path, target: Path) -> None:
    old = None
    if target.exists():  # only reached with force
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(
    config: NetworkConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    *,
    name: str,
    out_dir: Path | str,
    training_info: dict,
    description: str = "",
    force: bool = False,
    progress: bool = True,
    metrics: dict | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> Path:
    """Write `out_dir/name/` (generator.onnx, discriminator.onnx, samples.png, model.json).

    `training_info` holds preset, config (the resolved run config, JSON-able), steps,
    wall_time_s and seed, and optionally dataset. `metrics` (name -> models.card.Metric fields)
    go onto the card as given. A conditional pair (config.classes > 0) needs `class_names`, one per
    class, for the card's condition section. Returns the model folder.
    """
    out_dir = Path(out_dir)
    target = _check_target(name, out_dir, force)
    training = _training_info(training_info)
    dataset = str(training_info.get("dataset", "unknown"))
    if config.conditional:
        class_names = list(class_names or [])
        if len(class_names) != config.classes:
            raise ExportError(
                f"class_names: {len(class_names)} names for a conditional model of {config.classes} classes"
            )
    G, D = _frozen_copy(generator), _frozen_copy(discriminator)
    if config.d_pack > 1:
        # The service's contract is one realness per sample; a packed D gives one per pack.
        D = PerSampleDiscriminator(D).eval()  # the wrapper too: torch.onnx warns on a module in train mode
        description = f"{description} {pack_note(config.d_pack)}".strip()

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".{name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        build = build_folder
        if config.family == "style":
            from training.style.export import build_style_folder as build
        with tqdm(total=5, desc=f"export {name}", unit="step", disable=not progress) as steps:
            build(
                staging,
                config,
                G,
                D,
                name=name,
                description=description,
                dataset=dataset,
                training=training,
                steps=steps,
                progress=progress,
                metrics=metrics or {},
                class_names=class_names,
            )
        _move_into_place(staging, target)
    except CardError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise OnnxExportError(str(e).replace(str(staging), str(target))) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def export_run(
    run_dir: Path | str,
    *,
    name: str,
    out_dir: Path | str,
    description: str = "",
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Export the latest checkpoint of a training run (see training/checkpoint.py)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run directory")
    _check_target(name, Path(out_dir), force)  # fail before loading anything
    from training.checkpoint import load_run

    run = load_run(run_dir)
    cfg = run.config
    dataset = cfg.dataset if isinstance(cfg.dataset, str) else getattr(cfg.dataset, "name", str(cfg.dataset))
    info = {
        "preset": cfg.preset,
        "config": cfg.to_dict(),
        "steps": run.step,
        "wall_time_s": run.wall_time_s,
        "seed": cfg.seed,
        "dataset": dataset,
    }
    return export_model(
        cfg.network,
        run.generator,
        run.discriminator,
        name=name,
        out_dir=out_dir,
        training_info=info,
        description=description,
        force=force,
        progress=progress,
        metrics=_run_metrics(run_dir, run.step),
        class_names=_class_names(cfg),
    )


def _class_names(cfg) -> tuple[str, ...] | None:
    """The names of a conditional run's classes, from its dataset ("0".."9", "mode0"..)."""
    if not cfg.network.conditional:
        return None
    from training.data import dataset_info

    return dataset_info(cfg.dataset, **cfg.dataset_options).class_names


def _run_metrics(run_dir: Path, step: int) -> dict:
    """The run's metrics.json, if `evaluate` wrote one for the checkpoint being exported.

    They were measured through torch, not the ONNX graphs; each keeps its own `method` text, which
    says so. Metrics of an older checkpoint would describe a different G, so they are refused.
    """
    path = run_dir / RUN_METRICS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        measured_at, metrics = data["step"], data["metrics"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ExportError(f"{path}: not a metrics file written by `python -m training evaluate` ({e})") from None
    if measured_at != step:
        raise ExportError(
            f"{path}: measured at step {measured_at}, but the latest checkpoint is step {step}; "
            "run `python -m training evaluate` on the run again"
        )
    return metrics
