"""Latent vectors: drawn in the service, from the seed, with numpy's PCG64.

PCG64 and numpy's samplers give the same float64 stream from the same seed on every machine and
OS, so a seed is a portable handle on samples (the graph itself never draws random numbers).
Draws are made in float64 and cast to float32 once, at the end.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from models.card import Latent

MAX_SEED = 2**64 - 1
# Truncation that keeps fewer coordinates than this would resample (nearly) forever.
MIN_KEEP_PROBABILITY = 1e-3


def random_seed() -> int:
    """A fresh 64-bit seed for requests that bring none (it is returned to the caller)."""
    return secrets.randbits(64)


def generator(seed: int, stream: int = 0) -> np.random.Generator:
    """Stream 0 draws latents; other streams (e.g. 1: rejection sampling's coin flips) are
    independent of it, so asking for a filter never changes which latents a seed gives."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}")
    if stream == 0:
        return np.random.Generator(np.random.PCG64(seed))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,))))


def keep_probability(latent: Latent, truncation: float) -> float:
    """The chance that one coordinate lands within |z| <= truncation."""
    if latent.distribution == "normal":
        return math.erf(truncation / math.sqrt(2.0))
    overlap = min(latent.high, truncation) - max(latent.low, -truncation)
    return max(0.0, overlap) / (latent.high - latent.low)


def check_truncation(latent: Latent, truncation: float | None) -> None:
    if truncation is None:
        return
    if not (math.isfinite(truncation) and truncation > 0):
        raise ValueError("truncation must be a finite number > 0")
    if keep_probability(latent, truncation) < MIN_KEEP_PROBABILITY:
        raise ValueError(
            f"truncation {truncation} keeps under {MIN_KEEP_PROBABILITY:.1%} of this model's "
            f"{latent.distribution} latent coordinates; use a larger threshold"
        )


def _base(rng: np.random.Generator, latent: Latent, size) -> np.ndarray:
    if latent.distribution == "normal":
        return rng.standard_normal(size)
    return latent.low + (latent.high - latent.low) * rng.random(size)


def draw(rng: np.random.Generator, latent: Latent, n: int, truncation: float | None = None) -> np.ndarray:
    """n latent vectors, (n, dim) float32. With `truncation`, every coordinate beyond the
    threshold is redrawn (from the same stream, in order) until all lie within it."""
    check_truncation(latent, truncation)
    z = _base(rng, latent, (n, latent.dim))  # (n, dim) float64
    if truncation is not None:
        outside = np.abs(z) > truncation
        while outside.any():
            z[outside] = _base(rng, latent, int(outside.sum()))
            outside = np.abs(z) > truncation
    return z.astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Straight line from a to b at fractions t: (dim,), (dim,), (steps,) -> (steps, dim)."""
    a, b, t = a.astype(np.float64), b.astype(np.float64), t.astype(np.float64)[:, None]
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985): keeps the norm that high-dimensional latents
    concentrate on, where lerp passes through the low-norm middle. (dim,), (dim,), (steps,) ->
    (steps, dim). Falls back to lerp for (anti)parallel or zero vectors, where the arc is undefined."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0.0 or nb == 0.0:
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0))
    omega = math.acos(cos)
    if math.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t = t.astype(np.float64)[:, None]  # (steps, 1)
    wa = np.sin((1.0 - t) * omega) / math.sin(omega)
    wb = np.sin(t * omega) / math.sin(omega)
    return (wa * a64 + wb * b64).astype(np.float32)
