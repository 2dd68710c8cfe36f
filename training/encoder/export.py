"""Add encoder.onnx to a model folder: exported, parity-checked against torch through onnxruntime
on the written file, then recorded on the card (files, onnx signature, metrics) with an atomic
card write. The file is written under a hidden name and renamed before the card names it, so a
failure leaves the folder as it was (at most a hidden leftover)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.card import (
    GRAPH_FILES,
    Metric,
    ModelCard,
    file_entry,
    load_model_folder,
    read_card,
    verify_files,
    write_card,
)
from training.encoder.pairs import Pairs
from training.encoder.train import EncoderStats, encode
from training.onnx_io import OnnxExportError, cpu_session, export_graph, save_graph, signature_of

TOLERANCE = 1e-4
PARITY_BATCHES = (1, 7, 256)


class EncoderError(ValueError):
    """An encoder that cannot be added; the message names the file or option."""


def add_encoder(
    folder: Path | str, E, stats: EncoderStats, held: Pairs, *, force: bool = False, real_metrics: dict | None = None
) -> Path:
    folder = Path(folder)
    card, _ = load_model_folder(folder)
    if card.has_encoder and not force:
        raise EncoderError(f"{folder / GRAPH_FILES['encoder']}: the model has an encoder (pass --force to replace it)")
    out_name = "w" if card.style is not None else "z"
    x2 = torch.from_numpy(held.x[:2])
    c2 = torch.from_numpy(held.c[:2]) if held.c is not None else None
    proto = export_graph(
        E, (x2,) if c2 is None else (x2, c2), "x" if c2 is None else ("x", card.condition.input), out_name
    )
    partial = folder / f".{GRAPH_FILES['encoder']}.partial"
    save_graph(proto, partial)
    try:
        _check_parity(E, partial, held, card)
        partial.replace(folder / GRAPH_FILES["encoder"])
    finally:
        partial.unlink(missing_ok=True)
    files = {**card.files, "encoder": file_entry(folder / GRAPH_FILES["encoder"])}
    onnx = card.onnx.model_copy(update={"encoder": signature_of(proto)})
    metrics = {**card.metrics, **encoder_metrics(stats), **(real_metrics or {})}
    updated = ModelCard.model_validate(
        {
            **card.model_dump(),
            "files": files,
            "onnx": onnx.model_dump(),
            "metrics": {k: m.model_dump() for k, m in metrics.items()},
        }
    )
    write_card(folder, updated)
    verify_files(folder, read_card(folder))
    return folder / GRAPH_FILES["encoder"]


def _check_parity(E, path: Path, held: Pairs, card: ModelCard) -> None:
    session = cpu_session(path)
    names = [i.name for i in session.get_inputs()]
    for n in PARITY_BATCHES:
        x, c = held.x[:n], None if held.c is None else held.c[:n]
        feeds = {names[0]: x} | ({names[1]: c} if c is not None else {})
        diff = float(np.max(np.abs(session.run(None, feeds)[0] - encode(E, x, c))))
        if not diff <= TOLERANCE:
            raise OnnxExportError(
                f"{path.name}: differs from torch by {diff:.3g} at batch {n} (tolerance {TOLERANCE:g})"
            )


def encoder_metrics(stats: EncoderStats) -> dict[str, Metric]:
    how = (
        f"E trained {stats.steps} steps on {stats.pool} pairs (G(z), {stats.space}) of this folder's graphs, G frozen"
        + (f", then {stats.real_steps} steps with real training images through G" if stats.real_steps else "")
        + "; measured on 1,000 held-out pairs through torch"
    )
    return {
        "encoder_latent_mse": Metric(
            value=stats.latent_mse,
            method=f"mean squared error of E(G(z)) against {stats.space}, per coordinate; {how}",
            details={"latent_variance": stats.latent_variance},
        ),
        "encoder_reconstruction_mse": Metric(
            value=stats.reconstruction_mse,
            method=f"mean squared error of G(E(G(z))) against G(z), per value; {how}",
            details={"unrelated_samples_mse": stats.unrelated_mse},
        ),
    }


def real_image_metrics(judge, pairs_only, tuned, real_steps: int) -> dict[str, Metric]:
    """The inversion of held-out real images (valid + test), E after pairs alone and after the
    real-image phase, each beside the nearest training image measured the same way."""
    ref = judge.reference
    held = f"{len(judge.held.x)} held-out real images of {judge.card.dataset} (valid + test, never trained on)"
    how = f"G(E(x)) through the folder's graphs (uniform z clipped to its box) for {held}"
    stage = f"E after {real_steps} steps on real training images through G (pairs_only: before them)"
    out = {
        "encoder_real_reconstruction_mse": Metric(
            value=tuned.pixel_mse,
            method=f"mean squared pixel error of {how}; {stage}",
            details={"pairs_only": pairs_only.pixel_mse, "nearest_train_image": ref.pixel_mse},
        )
    }
    if tuned.feature_distance is not None:
        out["encoder_real_feature_distance"] = Metric(
            value=tuned.feature_distance,
            method=(
                f"mean squared distance per feature between x and G(E(x)) in the 64-d features of the project's "
                f"{ref.feature_net} classifier, {how}; {stage}"
            ),
            details={"pairs_only": pairs_only.feature_distance, "nearest_train_image": ref.feature_distance},
        )
    if tuned.class_kept is not None:
        out["encoder_real_class_kept"] = Metric(
            value=tuned.class_kept,
            method=f"share of G(E(x)) the project's {ref.feature_net} classifier calls by x's label, {how}; {stage}",
            details={"pairs_only": pairs_only.class_kept, "classifier_on_real": ref.classifier_accuracy},
        )
    return out
