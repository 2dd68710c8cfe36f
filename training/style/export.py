"""A style-based G to a model folder of card version 3: mapping.onnx (z [, c] -> w),
synthesis.onnx (ws [N, num_ws, w_dim] -> x, noise fixed: "const" mode), w_avg.npy and the
discriminator, checked the way training/export.py checks a single-graph model (onnxruntime on the
written files, parity with torch at several batch sizes, the card read back)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.card import (
    GRAPH_FILES,
    STYLE_SCHEMA_VERSION,
    Condition,
    Latent,
    ModelCard,
    OnnxInfo,
    Realness,
    Style,
    check_signature,
    file_entry,
    now_utc,
    read_card,
    verify_files,
    write_card,
)
from training import export_parts as base
from training.grid import save_image_grid
from training.networks import sample_latent
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
from training.style.compose import run_style

W_AVG_FILE = "w_avg.npy"
W_TOLERANCE = 1e-4  # max abs difference of w (the mapping's outputs are O(1) to O(10))
# Of the images: a trained synthesis stacks 8 modulated convolutions whose float32 sums onnxruntime
# orders differently from torch; the emoji run at step 3,800 differs by 1.6e-5 at batch 256. 1e-4
# is still 40 times below one 8-bit level (1/255), so no served PNG can differ.
X_TOLERANCE = 1e-4


class Mapping(nn.Module):
    """z [, c] -> w: the mapping network alone (eval mode: w_avg is not updated)."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.mapping = G.mapping

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.mapping(z, c)


class Synthesis(nn.Module):
    """ws (N, num_ws, w_dim) -> images in [0, 1], with each layer's fixed noise."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.G.draw(ws)


def _check_style_parity(G, sessions: dict, cfg, seed: int) -> None:
    """The composed graphs against torch's G, and synthesis alone on ws that differ per layer
    (what truncation and mixing feed it), at every parity batch size."""
    g_tol = X_TOLERANCE
    rng = torch.Generator().manual_seed(seed)
    for batch in base.PARITY_BATCHES:
        z = sample_latent(cfg.latent, batch, rng)
        c = torch.randint(cfg.classes, (batch,), generator=rng) if cfg.conditional else None
        ws = torch.randn(batch, G.num_ws, G.w_dim, generator=rng)
        with torch.no_grad():
            w, x, x_mixed = G.mapping(z, c), G(z, c), G.draw(ws)
        c_np = None if c is None else c.numpy()
        feeds = {"z": z.numpy()} | ({"c": c_np} if c is not None else {})
        composed = run_style(sessions["mapping"], sessions["synthesis"], z.numpy(), c_np, G.num_ws)
        checks = (
            ("mapping", w, sessions["mapping"].run(None, feeds)[0], W_TOLERANCE),
            ("synthesis", x, composed, g_tol),
            ("synthesis", x_mixed, sessions["synthesis"].run(None, {"ws": ws.numpy()})[0], g_tol),
        )
        for role, ours, theirs, tol in checks:
            diff = float(np.max(np.abs(theirs - ours.numpy()))) if theirs.shape == tuple(ours.shape) else np.inf
            if not diff <= tol:
                raise OnnxExportError(
                    f"{GRAPH_FILES[role]}: differs from torch by {diff:.3g} at batch {batch} (tolerance {tol:g})"
                )


def build_style_folder(
    folder, cfg, G, D, *, name, description, dataset, training, steps, progress, metrics, class_names
) -> None:
    """training/export.py's _build_folder for a style-based G."""
    seed = training.seed
    paths = {role: folder / GRAPH_FILES[role] for role in ("mapping", "synthesis", "discriminator")}
    z = sample_latent(cfg.latent, 2, torch.Generator().manual_seed(seed))  # (2, z_dim)
    c = torch.tensor([0, 1]) if cfg.conditional else None
    with torch.no_grad():
        w = G.mapping(z, c)
        ws = w[:, None].repeat(1, G.num_ws, 1)  # (2, num_ws, w_dim)
        x = G.draw(ws)
    protos = {
        "mapping": export_graph(Mapping(G).eval(), base.graph_args(z, c), ("z", "c") if c is not None else "z", "w"),
        "synthesis": export_graph(Synthesis(G).eval(), ws, "ws", "x"),
        "discriminator": base.export_discriminator(D, x, c),
    }
    steps.update()
    for role, proto in protos.items():
        save_graph(proto, paths[role])
    signatures = {role: signature_of(proto) for role, proto in protos.items()}
    sessions = {}
    for role, path in paths.items():
        sessions[role] = cpu_session(path)
        check_signature(path, signatures[role], session_signature(sessions[role]))
    w_avg = G.mapping.w_avg.detach().numpy().astype(np.float32)  # (w_dim,)
    np.save(folder / W_AVG_FILE, w_avg, allow_pickle=False)
    _check_style_parity(G, sessions, cfg, seed)
    steps.update()

    z_all = sample_latent(cfg.latent, base.REALNESS_SAMPLES, torch.Generator().manual_seed(seed + 1)).numpy()
    c_all = (np.arange(base.REALNESS_SAMPLES) % cfg.classes).astype(np.int64) if cfg.conditional else None
    xs, logits = [], []
    for i in range(0, len(z_all), base.REALNESS_CHUNK):
        part = None if c_all is None else c_all[i : i + base.REALNESS_CHUNK]
        xb = run_style(sessions["mapping"], sessions["synthesis"], z_all[i : i + base.REALNESS_CHUNK], part, G.num_ws)
        xs.append(xb)
        logits.append(sessions["discriminator"].run(None, base.graph_feeds("x", xb, part))[0])
    x_all, logits = np.concatenate(xs), np.concatenate(logits)
    if not (np.isfinite(x_all).all() and np.isfinite(logits).all()):
        raise OnnxExportError(f"{GRAPH_FILES['synthesis']}: G's samples or D's logits are not finite; the run diverged")
    sample = base.sample_spec(cfg, x_all)
    if cfg.conditional:
        per = base.PREVIEW_PER_CLASS
        pick = base.preview_order(len(x_all), cfg.classes, per)
        save_image_grid(x_all[pick], folder / base.PREVIEW_FILE, sample.value_range, ncol=per)
    else:
        save_image_grid(x_all[: base.PREVIEW_IMAGES], folder / base.PREVIEW_FILE, sample.value_range)
    steps.update()

    card = ModelCard(
        schema_version=STYLE_SCHEMA_VERSION,
        name=name,
        description=description,
        dataset=dataset,
        latent=Latent(dim=cfg.latent.dim, distribution=cfg.latent.distribution),
        sample=sample,
        files={role: file_entry(path) for role, path in paths.items()},
        onnx=OnnxInfo(opset=OPSET, ir_version=IR_VERSION, **signatures),
        realness=Realness(max_logit=float(logits.max()), measured_on=base.REALNESS_SAMPLES),
        condition=Condition(classes=cfg.classes, names=list(class_names)) if cfg.conditional else None,
        style=Style(w_dim=G.w_dim, num_ws=G.num_ws, w_avg=file_entry(folder / W_AVG_FILE)),
        training=training,
        metrics=metrics,
        created_at=now_utc(),
    )
    write_card(folder, card)
    verify_files(folder, read_card(folder))
    steps.update()
