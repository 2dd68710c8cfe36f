"""Quality and diversity of generated digits, seen through the project's digit classifier.

- Frechet distance (Heusel et al. 2017, as in FID) between Gaussians fitted to the classifier's
  64-d features of generated and of held-out real digits: 0 for identical sets.
- Mean confidence: the mean of the top class probability on generated digits (sharp digits ~1).
- Class balance: the histogram of predicted digits, the smallest class share (0.1 is perfectly
  even; 0 means a digit is never made) and its entropy (log 10 = 2.303 nats when even).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from training.evaluation.classifier import CLASSES, Classifier


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    covmean, _ = linalg.sqrtm(cov1 @ cov2, disp=False)
    if not np.isfinite(covmean).all():
        # A singular product: nudge both diagonals, as the reference FID code does.
        eps = np.eye(cov1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = covmean.real  # imaginary parts are rounding noise of a PSD product
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean), 0.0))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


@dataclass(frozen=True)
class DigitMetrics:
    frechet: float
    confidence: float
    class_shares: list[float]  # predicted digit shares, 0..9
    min_share: float
    entropy: float
    n_generated: int
    n_real: int


def class_balance(probs: np.ndarray) -> tuple[list[float], float, float]:
    """Predicted class shares, the smallest share and the entropy (nats) of the shares."""
    counts = np.bincount(probs.argmax(axis=1), minlength=CLASSES)
    shares = counts / counts.sum()
    nz = shares[shares > 0]
    return [float(s) for s in shares], float(shares.min()), float(-(nz * np.log(nz)).sum())


def digit_metrics(clf: Classifier, generated: np.ndarray, real: np.ndarray) -> DigitMetrics:
    if generated.shape[0] < 2 or real.shape[0] < 2:
        raise ValueError("need at least 2 generated and 2 real digits for a covariance")
    fg, pg = clf.features_and_probs(generated)
    fr, _ = clf.features_and_probs(real)
    shares, min_share, entropy = class_balance(pg)
    return DigitMetrics(
        frechet=frechet_distance(*feature_stats(fg), *feature_stats(fr)),
        confidence=float(pg.max(axis=1).mean()),
        class_shares=shares,
        min_share=min_share,
        entropy=entropy,
        n_generated=int(generated.shape[0]),
        n_real=int(real.shape[0]),
    )


MAX_ENTROPY = math.log(CLASSES)
