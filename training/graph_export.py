"""A single-graph model's folder (generator.onnx and discriminator.onnx), built in a staging folder
by training/export.py: both graphs exported and opened by onnxruntime, checked against torch,
realness measured over G's samples, the preview drawn and the card written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.card import (
    GRAPH_FILES,
    Condition,
    Latent,
    ModelCard,
    OnnxInfo,
    Realness,
    check_signature,
    file_entry,
    now_utc,
    read_card,
    verify_files,
    write_card,
)
from training.export_parts import (
    D_TOLERANCE,
    G_TOLERANCE,
    PARITY_BATCHES,
    PREVIEW_FILE,
    PREVIEW_IMAGES,
    PREVIEW_PER_CLASS,
    REALNESS_CHUNK,
    REALNESS_SAMPLES,
    export_discriminator,
    graph_args,
    graph_feeds,
    preview_order,
    sample_spec,
)
from training.grid import save_image_grid, save_vector_plot
from training.networks import NetworkConfig, sample_latent
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


def build_folder(
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
