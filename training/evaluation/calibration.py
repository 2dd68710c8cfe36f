"""How well D's realness separates and how well it reads as a probability, and DRS's gamma.

- AUC: the probability that a held-out real sample gets a higher logit than one of G's (ties
  count half), by ranks (Mann-Whitney U).
- Reliability: on a balanced held-out set (as many real as generated), realness binned into 10
  equal-width bins; in each, the mean realness against the share that was real. The expected
  calibration error (ECE) is the count-weighted mean gap (Guo et al. 2017). On a balanced set the
  optimal D* = p_data / (p_data + p_g) is exactly calibrated.
- DRS (Azadi et al. 2019): a sample with logit l is kept with probability sigmoid(F - gamma),
  F = d - log(1 - exp(d - eps)), d = l - max_logit. `gamma_for_acceptance` finds the gamma whose
  expected acceptance over G's samples is a target rate; `recommended_gamma` uses it only to loosen
  DRS (gamma < 0) when the exact sampler (gamma 0) would keep fewer than the target. The formula mirrors the service's
  (service/core/sampling.py `_drs_accept`), which training may not import; a test checks they agree.
"""

from __future__ import annotations

import math

import numpy as np

DRS_EPSILON = 1e-6  # as service/core/sampling.py
BINS = 10
QUANTILES = {"p05": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}
GAMMA_BOUNDS = (-50.0, 50.0)  # the range the card and the API accept


def sigmoid(logit: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(np.asarray(logit, np.float64) / 2.0))


def auc(real_logits: np.ndarray, fake_logits: np.ndarray) -> float:
    r, f = np.asarray(real_logits, np.float64).ravel(), np.asarray(fake_logits, np.float64).ravel()
    both = np.concatenate([r, f])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    # Ties share their mean rank, so equal logits count half.
    uniq, inv, counts = np.unique(both, return_inverse=True, return_counts=True)
    if len(uniq) < len(both):
        sums = np.bincount(inv, weights=ranks)
        ranks = (sums / counts)[inv]
    u = ranks[: len(r)].sum() - len(r) * (len(r) + 1) / 2
    return float(u / (len(r) * len(f)))


def reliability(real_logits: np.ndarray, fake_logits: np.ndarray, bins: int = BINS) -> tuple[list[dict], float]:
    """Reliability bins and ECE on a balanced set: the larger side is cut to the smaller's size."""
    k = min(len(real_logits), len(fake_logits))
    p = sigmoid(np.concatenate([np.ravel(real_logits)[:k], np.ravel(fake_logits)[:k]]))  # (2k,)
    y = np.concatenate([np.ones(k), np.zeros(k)])
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        row = {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": n,
            "mean_realness": None,
            "share_real": None,
        }
        if n:
            row["mean_realness"], row["share_real"] = float(p[sel].mean()), float(y[sel].mean())
            ece += n / len(p) * abs(row["mean_realness"] - row["share_real"])
        out.append(row)
    return out, float(ece)


def summary(logits: np.ndarray) -> dict:
    r = sigmoid(np.ravel(logits))
    return {
        "n": int(r.size),
        "mean": float(r.mean()),
        "std": float(r.std()),
        "quantiles": {k: float(np.percentile(r, q)) for k, q in QUANTILES.items()},
    }


def drs_score(logits: np.ndarray, max_logit: float) -> np.ndarray:
    """F at gamma 0 for each logit (the service keeps a sample when sigmoid(F - gamma) > u)."""
    d = np.minimum(np.asarray(logits, np.float64).ravel() - max_logit, 0.0)
    return d - np.log(-np.expm1(d - DRS_EPSILON))


def acceptance(logits: np.ndarray, max_logit: float, gamma: float) -> float:
    """The expected share of G's samples that DRS keeps at this gamma."""
    return float(sigmoid(drs_score(logits, max_logit) - gamma).mean())


def recommended_gamma(logits: np.ndarray, max_logit: float, target: float) -> float:
    """DRS's gamma for serving: 0 (the rejection sampler of the estimated ratio itself) unless that
    keeps fewer than `target` of G's samples; then loosened (gamma < 0) just enough to keep `target`.
    Never stricter than 0: a positive gamma turns DRS into a threshold on D (measured on toy1d: at
    acceptance 0.25 the samples' std fell from 1.0 to 0.65, the JSD rose 60-fold)."""
    return min(0.0, gamma_for_acceptance(logits, max_logit, target))


def gamma_for_acceptance(logits: np.ndarray, max_logit: float, target: float) -> float:
    """The gamma (within GAMMA_BOUNDS) whose expected acceptance is `target`, by bisection
    (acceptance falls as gamma rises)."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target acceptance must be in (0, 1], got {target}")
    f = drs_score(logits, max_logit)
    lo, hi = GAMMA_BOUNDS
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if sigmoid(f - mid).mean() > target:
            lo = mid
        else:
            hi = mid
    return round(0.5 * (lo + hi), 4) if math.isfinite(lo + hi) else 0.0
