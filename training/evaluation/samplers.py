"""`sample(n, seed) -> np.ndarray (n, *sample_shape)` for the two things evaluation can measure:
a training run (its latest checkpoint, run with torch) and an exported model folder (its
generator.onnx, run with onnxruntime, exactly the graph the service will serve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.card import ModelCard

BATCH = 2000


def run_sampler(generator: torch.nn.Module, latent_cfg) -> "callable":
    from training.networks import sample_latent

    @torch.no_grad()
    def sample(n: int, seed: int) -> np.ndarray:
        generator.eval()
        gen = torch.Generator().manual_seed(seed)
        z = sample_latent(latent_cfg, n, gen)  # (n, z_dim)
        return torch.cat([generator(z[i : i + BATCH]) for i in range(0, n, BATCH)]).numpy()  # (n, *shape)

    return sample


def onnx_sampler(folder: Path, card: ModelCard, threads: int = 0) -> "callable":
    """`threads`: onnxruntime's intra-op threads (0: its default, one per core). One is faster for
    small graphs called often on busy cores, where a pool of spinning threads fights the others."""
    from training.onnx_io import cpu_session, run_batched

    session = cpu_session(Path(folder) / card.files["generator"].name, threads)
    lat = card.latent

    def sample(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)  # numpy's PCG64, as the service draws latents
        if lat.distribution == "normal":
            z = rng.standard_normal((n, lat.dim))
        else:
            z = rng.uniform(lat.low, lat.high, size=(n, lat.dim))
        return run_batched(session, z.astype(np.float32), BATCH)  # (n, *shape)

    return sample
