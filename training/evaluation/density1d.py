"""1-D densities on a grid: p_g by Gaussian kernel density of G's samples, and the divergences
between it and a known p_data. Used for toy1d's metrics and by the paper's claims (training/paper/).

Theorem 1 of the paper: C(G) = max_D V(G, D) = -log 4 + 2 JSD(p_data || p_g), so the JSD measured
here also gives the criterion C(G) in closed form, without training any D.
"""

from __future__ import annotations

import math

import numpy as np

LOG4 = math.log(4.0)


def kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian KDE of 1-D samples evaluated on `grid`; Silverman's bandwidth by default."""
    s = np.asarray(samples, dtype=np.float64).reshape(-1)  # (N,)
    g = np.asarray(grid, dtype=np.float64).reshape(-1)  # (M,)
    if s.size < 2 or not np.isfinite(s).all():
        raise ValueError("kde: need at least 2 finite samples")
    if bandwidth is None:
        spread = min(s.std(ddof=1), (np.percentile(s, 75) - np.percentile(s, 25)) / 1.34) or s.std(ddof=1) or 1e-3
        bandwidth = 0.9 * spread * s.size ** (-0.2)
    out = np.zeros_like(g)
    for i in range(0, s.size, 4096):  # bounded memory: (M, 4096) at a time
        d = (g[:, None] - s[None, i : i + 4096]) / bandwidth  # (M, B)
        out += np.exp(-0.5 * d * d).sum(axis=1)
    return out / (s.size * bandwidth * math.sqrt(2 * math.pi))


def _kl(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    mask = p > 0
    return float((p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-300))).sum() * dx)


def jsd(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """Jensen-Shannon divergence (nats) of two densities tabulated on an even grid of step dx."""
    m = 0.5 * (p + q)
    return 0.5 * _kl(p, m, dx) + 0.5 * _kl(q, m, dx)


def criterion_from_jsd(j: float) -> float:
    """C(G) = -log 4 + 2 JSD (the paper's Theorem 1)."""
    return -LOG4 + 2.0 * j


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """D*_G(x) = p_data(x) / (p_data(x) + p_g(x)) (Proposition 1); 1/2 where both vanish."""
    total = p_data + p_g
    return np.where(total > 0, p_data / np.where(total > 0, total, 1.0), 0.5)
