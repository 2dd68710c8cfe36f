"""Parzen-window log-likelihood, the protocol of Goodfellow et al. (2014), Table 1.

The original code (goodfeli/adversarial, parzen_ll.py) fits an isotropic Gaussian kernel density
to 10,000 samples of G, picks the width sigma from logspace(-1, 0, 10) by the mean log-likelihood
of the validation set, and reports the mean log-likelihood of the test set with its standard error.

    log p(x) = logsumexp_i( -||x - s_i||^2 / (2 sigma^2) ) - log N - (d/2) log(2 pi sigma^2)

Squared distances are computed in float64 by ||x||^2 + ||s||^2 - 2 x.s, one block of rows against
one block of samples at a time, so memory stays bounded by the block sizes whatever N is; the
log-sum-exp is accumulated over sample blocks with a running maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

# The paper's grid of kernel widths.
SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 10))
ROW_BLOCK = 256
SAMPLE_BLOCK = 2048  # (S, ROW_BLOCK, SAMPLE_BLOCK) float64 stays under ~50 MB


@dataclass(frozen=True)
class ParzenResult:
    mean: float  # mean log-likelihood of the test points (nats)
    stderr: float  # standard error of that mean
    sigma: float  # kernel width chosen on the validation points
    n_samples: int
    n_test: int
    n_valid: int
    valid_scores: dict[float, float] = field(default_factory=dict)  # sigma -> validation mean


def _flat(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{what}: need a non-empty batch of shape (N, ...), got {x.shape}")
    flat = x.reshape(x.shape[0], -1).astype(np.float64)  # (N, d)
    if not np.isfinite(flat).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return flat


def log_likelihoods(
    x: np.ndarray, samples: np.ndarray, sigmas: tuple[float, ...] | float, *, progress: bool = False
) -> np.ndarray:
    """Log-density of each row of x under the Parzen window of `samples`, for each sigma.

    Returns (len(sigmas), N_x); a single float sigma gives (1, N_x)."""
    sig = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))  # (S,)
    xs, ss = _flat(x, "points"), _flat(samples, "samples")
    if xs.shape[1] != ss.shape[1]:
        raise ValueError(f"points have {xs.shape[1]} dimensions, samples {ss.shape[1]}")
    n, d = ss.shape
    s_sq = (ss**2).sum(1)  # (N,)
    out = np.empty((sig.size, xs.shape[0]))
    const = -math.log(n) - 0.5 * d * np.log(2 * math.pi * sig**2)  # (S,)
    inv = 1.0 / (2 * sig**2)  # (S,)
    rows = range(0, xs.shape[0], ROW_BLOCK)
    for r in tqdm(rows, desc="parzen", unit="block", disable=not progress, leave=False):
        xb = xs[r : r + ROW_BLOCK]  # (B, d)
        x_sq = (xb**2).sum(1)  # (B,)
        run_max = np.full((sig.size, xb.shape[0]), -np.inf)  # (S, B)
        run_sum = np.zeros((sig.size, xb.shape[0]))  # (S, B) sum of exp(e - run_max)
        for c in range(0, n, SAMPLE_BLOCK):
            d2 = x_sq[:, None] + s_sq[None, c : c + SAMPLE_BLOCK] - 2.0 * xb @ ss[c : c + SAMPLE_BLOCK].T
            d2 = np.maximum(d2, 0.0)  # (B, C); rounding can make tiny distances negative
            e = -d2[None] * inv[:, None, None]  # (S, B, C)
            new_max = np.maximum(run_max, e.max(axis=2))  # (S, B)
            run_sum = run_sum * np.exp(run_max - new_max) + np.exp(e - new_max[..., None]).sum(axis=2)
            run_max = new_max
        out[:, r : r + ROW_BLOCK] = run_max + np.log(run_sum) + const[:, None]
    return out


def parzen_estimate(
    samples: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
    *,
    sigmas: tuple[float, ...] = SIGMAS,
    progress: bool = False,
) -> ParzenResult:
    """The paper's protocol: sigma by validation mean log-likelihood, then test mean +- SE."""
    valid_ll = log_likelihoods(valid, samples, sigmas, progress=progress).mean(axis=1)  # (S,)
    best = int(np.argmax(valid_ll))
    sigma = float(sigmas[best])
    test_ll = log_likelihoods(test, samples, sigma, progress=progress)[0]  # (N_test,)
    stderr = float(test_ll.std(ddof=1) / math.sqrt(test_ll.size)) if test_ll.size > 1 else 0.0
    return ParzenResult(
        mean=float(test_ll.mean()),
        stderr=stderr,
        sigma=sigma,
        n_samples=int(np.asarray(samples).shape[0]),
        n_test=int(test_ll.size),
        n_valid=int(np.asarray(valid).shape[0]),
        valid_scores={float(s): float(v) for s, v in zip(sigmas, valid_ll)},
    )
