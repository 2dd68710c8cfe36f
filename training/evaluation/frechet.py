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

from training.evaluation.classifier import CLASSES, Classifier


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    Tr (C1 C2)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    C1^(1/2) C2 C1^(1/2) (same spectrum as C1 C2): stable for singular covariances, unlike sqrtm."""
    s1 = _psd_sqrt(cov1)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ cov2 @ s1), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean, 0.0))


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
