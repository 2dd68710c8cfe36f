"""`sample(n, seed, labels=None) -> np.ndarray (n, *sample_shape)` for the two things evaluation can
measure: a training run (its latest checkpoint, run with torch) and an exported model folder (its
generator.onnx, run with onnxruntime, exactly the graph the service will serve).

A conditional G takes `labels` (n,) int classes; without them it is sampled over its classes in
turn (0, 1, ..., K-1, 0, ...), so metrics of the whole model weigh every class equally. An
unconditional G refuses labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from models.card import ModelCard

BATCH = 2000


def balanced_labels(n: int, classes: int) -> np.ndarray:
    """Classes in turn: (n,) int64 0, 1, ..., classes-1, 0, 1, ..."""
    return (np.arange(n) % classes).astype(np.int64)


def _labels(n: int, classes: int, labels: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if not classes:
        if labels is not None:
            raise ValueError("labels: this generator is unconditional")
        return None
    if labels is None:
        return balanced_labels(n, classes)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,) or labels.min(initial=0) < 0 or labels.max(initial=0) >= classes:
        raise ValueError(f"labels: need {n} classes in [0, {classes})")
    return labels


def run_sampler(generator: torch.nn.Module, latent_cfg, classes: int = 0) -> callable:
    from training.networks import sample_latent

    @torch.no_grad()
    def sample(n: int, seed: int, labels: Optional[np.ndarray] = None) -> np.ndarray:
        generator.eval()
        c = _labels(n, classes, labels)
        gen = torch.Generator().manual_seed(seed)
        z = sample_latent(latent_cfg, n, gen)  # (n, z_dim)
        parts = []
        for i in range(0, n, BATCH):
            args = (z[i : i + BATCH],) if c is None else (z[i : i + BATCH], torch.from_numpy(c[i : i + BATCH]))
            parts.append(generator(*args))
        return torch.cat(parts).numpy()  # (n, *shape)

    sample.classes = classes
    return sample


def onnx_sampler(folder: Path, card: ModelCard, threads: int = 0) -> callable:
    """`threads`: onnxruntime's intra-op threads (0: its default, one per core). One is faster for
    small graphs called often on busy cores, where a pool of spinning threads fights the others."""
    from training.onnx_io import cpu_session

    sessions = [cpu_session(Path(folder) / card.files[role].name, threads) for role in card.sampling_roles]
    lat = card.latent
    classes = card.condition.classes if card.condition else 0

    def sample(n: int, seed: int, labels: Optional[np.ndarray] = None) -> np.ndarray:
        c = _labels(n, classes, labels)
        rng = np.random.default_rng(seed)  # numpy's PCG64, as the service draws latents
        if lat.distribution == "normal":
            z = rng.standard_normal((n, lat.dim))
        else:
            z = rng.uniform(lat.low, lat.high, size=(n, lat.dim))
        z = z.astype(np.float32)
        parts = []
        for i in range(0, n, BATCH):
            ci = None if c is None else c[i : i + BATCH]
            if card.is_style:  # mapping, w on every layer, synthesis: as the service composes them
                from training.style.compose import run_style

                parts.append(run_style(*sessions, z[i : i + BATCH], ci, card.style.num_ws))
                continue
            feed = {card.onnx.generator.inputs[0].name: z[i : i + BATCH].reshape(-1, *lat.graph_shape)}
            if ci is not None:
                feed[card.condition.input] = ci
            parts.append(sessions[0].run(None, feed)[0])
        return np.concatenate(parts)  # (n, *shape)

    sample.classes = classes
    return sample
