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

import numpy as np
import onnx
import torch
from torch import nn
from tqdm import tqdm

from models.card import (
    GRAPH_FILES,
    NAME_PATTERN,
    CardError,
    Condition,
    Latent,
    ModelCard,
    OnnxInfo,
    Realness,
    Sample,
    TrainingInfo,
    check_signature,
    file_entry,
    now_utc,
    read_card,
    verify_files,
    write_card,
)
from training.grid import save_image_grid, save_vector_plot
from training.networks import NetworkConfig, PerSampleDiscriminator, sample_latent
from training.onnx_io import (
    IR_VERSION,
    OPSET,
    OnnxExportError,
    cpu_session,
    export_graph,
    save_graph,
    session_signature,
    signature_of,
)

PARITY_BATCHES = (1, 7, 256)
G_TOLERANCE = 1e-5  # max abs difference of G's samples, torch vs onnxruntime
D_TOLERANCE = 1e-4  # max abs difference of D's logits
REALNESS_SAMPLES = 10_000  # samples of G over which realness.max_logit is measured
REALNESS_CHUNK = 500
PREVIEW_FILE = "samples.png"
PREVIEW_IMAGES = 64  # an 8 x 8 grid
PREVIEW_PER_CLASS = 10  # a conditional model's grid: one row of this many per class
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


def graph_feeds(first: str, value: np.ndarray, c: np.ndarray | None) -> dict[str, np.ndarray]:
    """A graph's feed: z or x, and a conditional graph's int64 class input `c`."""
    return {first: value} if c is None else {first: value, "c": c}


def graph_args(value: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    return (value,) if c is None else (value, c)


def export_discriminator(D: nn.Module, x: torch.Tensor, c: torch.Tensor | None = None) -> onnx.ModelProto:
    """D's graph, x -> logit, or x, c -> logit for a conditional D (c: int64 (batch,) classes), the
    batch axis dynamic; `x` (and `c`) are an example batch of >= 2. Shared with calibration, so a
    re-exported D has the signature export gave it."""
    return export_graph(D, graph_args(x, c), ("x", "c") if c is not None else "x", "logit")


def _check_parity(G: nn.Module, D: nn.Module, g_session, d_session, cfg: NetworkConfig, seed: int) -> dict:
    """torch and onnxruntime must agree at every batch size (and, for a conditional pair, on
    random classes); returns the worst differences seen."""
    rng = torch.Generator().manual_seed(seed)
    worst = {"generator": 0.0, "discriminator": 0.0}
    for batch in PARITY_BATCHES:
        z = sample_latent(cfg.latent, batch, rng)  # (batch, z_dim)
        c = torch.randint(cfg.classes, (batch,), generator=rng) if cfg.conditional else None  # (batch,) int64
        with torch.no_grad():
            x = G(*graph_args(z, c))  # (batch, *sample_shape)
            logit = D(*graph_args(x, c))  # (batch, 1)
        c_np = None if c is None else c.numpy()
        x_ort = g_session.run(None, graph_feeds("z", z.numpy(), c_np))[0]
        logit_ort = d_session.run(None, graph_feeds("x", x.numpy(), c_np))[0]
        for role, ours, theirs, tol in (
            ("generator", x, x_ort, G_TOLERANCE),
            ("discriminator", logit, logit_ort, D_TOLERANCE),
        ):
            if theirs.shape != tuple(ours.shape):
                raise OnnxExportError(
                    f"{GRAPH_FILES[role]}: batch {batch} gives shape {theirs.shape}, torch {tuple(ours.shape)}"
                )
            diff = float(np.max(np.abs(theirs - ours.numpy())))
            if not diff <= tol:  # also catches NaN
                raise OnnxExportError(
                    f"{GRAPH_FILES[role]}: differs from torch by {diff:.3g} at batch {batch} (tolerance {tol:g})"
                )
            worst[role] = max(worst[role], diff)
    return worst


def sample_spec(cfg: NetworkConfig, x: np.ndarray) -> Sample:
    shape = list(cfg.sample_shape)
    kind = "image" if len(shape) == 3 and shape[0] in (1, 3) else "vector"
    value_range = cfg.value_range
    if value_range is None:
        # A linear output is unbounded; the card needs finite bounds, so record the range G was
        # observed to produce over the realness samples.
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            lo, hi = lo - 1e-3, hi + 1e-3
        value_range = (lo, hi)
    return Sample(shape=shape, kind=kind, value_range=value_range)


def _training_info(info: dict) -> TrainingInfo:
    missing = [k for k in TRAINING_KEYS if k not in info]
    if missing:
        raise ExportError(f"training_info: missing {', '.join(missing)}")
    return TrainingInfo(torch_version=torch.__version__, **{k: info[k] for k in TRAINING_KEYS})


def _sample_and_score(
    g_session, d_session, z: np.ndarray, c: np.ndarray | None, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """G's samples of z (and classes c) and D's logits on them, in chunks (minutes on a CPU for a full DCGAN)."""
    xs, logits = [], []
    for i in tqdm(range(0, len(z), REALNESS_CHUNK), desc="realness", unit="chunk", leave=False, disable=not progress):
        part = None if c is None else c[i : i + REALNESS_CHUNK]
        x = g_session.run(None, graph_feeds("z", z[i : i + REALNESS_CHUNK], part))[0]  # (chunk, *sample_shape)
        xs.append(x)
        logits.append(d_session.run(None, graph_feeds("x", x, part))[0])  # (chunk, 1)
    return np.concatenate(xs), np.concatenate(logits)


def preview_order(n: int, classes: int, per_class: int) -> np.ndarray:
    """Indices into samples whose class is i % classes, giving `per_class` of class 0, then of class 1, ..."""
    return np.array([k + classes * j for k in range(classes) for j in range(per_class)])


def _build_folder(
    folder: Path, cfg, G, D, *, name, description, dataset, training, steps, progress, metrics, class_names
) -> None:
    seed = training.seed
    g_path, d_path = folder / GRAPH_FILES["generator"], folder / GRAPH_FILES["discriminator"]

    # Example batches of 2: with a batch of 1 the exporter may fix the batch axis to 1.
    z = sample_latent(cfg.latent, 2, torch.Generator().manual_seed(seed))  # (2, z_dim)
    c = torch.tensor([0, 1]) if cfg.conditional else None  # (2,) int64: the class input of a conditional pair
    with torch.no_grad():
        x = G(*graph_args(z, c))  # (2, *sample_shape)
    inputs = ("z", "c") if c is not None else "z"
    g_proto = export_graph(G, graph_args(z, c), inputs, "x")
    steps.update()
    d_proto = export_discriminator(D, x, c)
    steps.update()
    save_graph(g_proto, g_path)
    save_graph(d_proto, d_path)
    signatures = {"generator": signature_of(g_proto), "discriminator": signature_of(d_proto)}

    sessions = {}
    for role, path in (("generator", g_path), ("discriminator", d_path)):
        sessions[role] = cpu_session(path)
        check_signature(path, signatures[role], session_signature(sessions[role]))
    _check_parity(G, D, sessions["generator"], sessions["discriminator"], cfg, seed)
    steps.update()

    # Realness and the observed value range, measured through onnxruntime like the service will.
    # A conditional G is measured over classes in turn (0, 1, ..., K-1, 0, ...): every class equally.
    z_all = sample_latent(cfg.latent, REALNESS_SAMPLES, torch.Generator().manual_seed(seed + 1)).numpy()
    c_all = (np.arange(REALNESS_SAMPLES) % cfg.classes).astype(np.int64) if cfg.conditional else None
    x_all, logits = _sample_and_score(sessions["generator"], sessions["discriminator"], z_all, c_all, progress)
    if not (np.isfinite(x_all).all() and np.isfinite(logits).all()):
        raise OnnxExportError(f"{g_path.name}: G's samples or D's logits are not finite; the run diverged")
    sample = sample_spec(cfg, x_all)
    if sample.kind == "image" and cfg.conditional:  # one row per class
        per = PREVIEW_PER_CLASS
        save_image_grid(
            x_all[preview_order(len(x_all), cfg.classes, per)], folder / PREVIEW_FILE, sample.value_range, ncol=per
        )
    elif sample.kind == "image":
        save_image_grid(x_all[:PREVIEW_IMAGES], folder / PREVIEW_FILE, sample.value_range)
    else:
        save_vector_plot(x_all, folder / PREVIEW_FILE, title=f"{name}: {len(x_all)} samples of G", labels=c_all)
    steps.update()

    bounds = cfg.latent.bounds
    card = ModelCard(
        name=name,
        description=description,
        dataset=dataset,
        latent=Latent(
            dim=cfg.latent.dim,
            distribution=cfg.latent.distribution,
            low=bounds[0] if bounds else None,
            high=bounds[1] if bounds else None,
        ),
        sample=sample,
        files={"generator": file_entry(g_path), "discriminator": file_entry(d_path)},
        onnx=OnnxInfo(opset=OPSET, ir_version=IR_VERSION, **signatures),
        realness=Realness(max_logit=float(logits.max()), measured_on=REALNESS_SAMPLES),
        condition=Condition(classes=cfg.classes, names=list(class_names)) if cfg.conditional else None,
        training=training,
        metrics=metrics,
        created_at=now_utc(),
    )
    write_card(folder, card)
    # Read back what consumers will read: the card parses and the hashes match the files.
    verify_files(folder, read_card(folder))
    steps.update()


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
        build = _build_folder
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
