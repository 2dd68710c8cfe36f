"""Fidelity and diversity of generated samples as two numbers each, in a feature space.

- Precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"): each set's manifold is the union of balls around its points, of
  radius the distance to the point's k-th nearest neighbour in its own set (k = 3). Precision: the
  share of generated points inside the real manifold; recall: the share of real points inside the
  generated one.
- Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models"), k = 5: density counts how many real balls each generated point falls in (/ k, mean over
  generated points; ~1 when the sets match, robust to real outliers); coverage is the share of real
  points whose ball holds at least one generated point.

Plain numpy on feature arrays (N, d): a run (torch) and a model folder (onnxruntime) are measured
by the same code. Distances are computed in blocks, so 10k x 10k stays within memory.
"""

from __future__ import annotations

import numpy as np

PR_K = 3
DC_K = 5
BLOCK = 1024


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's squared distance to its k-th nearest neighbour in x (itself excluded)."""
    if len(x) <= k:
        raise ValueError(f"need more than k = {k} points, got {len(x)}")
    out = np.empty(len(x))
    for i in range(0, len(x), BLOCK):
        d = _sq_dists(x[i : i + BLOCK], x)
        out[i : i + BLOCK] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself (distance 0)
    return out


def _inside_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point, how many of the balls (centres, squared radii) hold it."""
    out = np.empty(len(points), dtype=np.int64)
    for i in range(0, len(points), BLOCK):
        out[i : i + BLOCK] = (_sq_dists(points[i : i + BLOCK], centres) <= radii[None, :]).sum(1)
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    precision = float((_inside_counts(fake, real, kth_radius(real, k)) > 0).mean())
    recall = float((_inside_counts(real, fake, kth_radius(fake, k)) > 0).mean())
    return precision, recall


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = DC_K) -> tuple[float, float]:
    radii = kth_radius(real, k)
    density = float(_inside_counts(fake, real, radii).mean() / k)
    # coverage: real point j is covered when some fake point lies within j's own radius
    covered = np.zeros(len(real), dtype=bool)
    for i in range(0, len(fake), BLOCK):
        covered |= (_sq_dists(fake[i : i + BLOCK], real) <= radii[None, :]).any(0)
    coverage = float(covered.mean())
    return density, coverage
