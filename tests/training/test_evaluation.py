"""Evaluation metrics on synthetic arrays whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluation import density1d, modes, parzen
from training.evaluation.frechet import class_balance, frechet_distance

# ---- Parzen window ----


def test_parzen_matches_closed_form_of_a_single_kernel():
    # One sample at the origin: log p(x) = log N(x; 0, sigma^2 I), exactly.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    sigma = 0.7
    got = parzen.log_likelihoods(x, np.zeros((1, 3)), sigma)[0]
    want = -0.5 * (x**2).sum(1) / sigma**2 - 1.5 * math.log(2 * math.pi * sigma**2)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_parzen_of_a_gaussian_approaches_its_smoothed_closed_form():
    # Kernel density of N(0, I) samples with width sigma estimates N(0, (1 + sigma^2) I).
    rng = np.random.default_rng(1)
    d, sigma = 2, 0.5
    samples, test = rng.normal(size=(20_000, d)), rng.normal(size=(2_000, d))
    got = parzen.log_likelihoods(test, samples, sigma)[0].mean()
    var = 1 + sigma**2
    want = (-0.5 * (test**2).sum(1) / var - 0.5 * d * math.log(2 * math.pi * var)).mean()
    assert abs(got - want) < 0.02


def test_parzen_blocks_do_not_change_the_answer(monkeypatch):
    rng = np.random.default_rng(2)
    x, s = rng.random((300, 10)), rng.random((5000, 10))
    whole = parzen.log_likelihoods(x, s, parzen.SIGMAS)
    monkeypatch.setattr(parzen, "ROW_BLOCK", 7)
    monkeypatch.setattr(parzen, "SAMPLE_BLOCK", 333)
    np.testing.assert_allclose(parzen.log_likelihoods(x, s, parzen.SIGMAS), whole, rtol=1e-9)


def test_parzen_protocol_picks_sigma_on_validation_and_reports_stderr():
    rng = np.random.default_rng(3)

    # Data spread ~0.3 per coordinate: the best width is neither end of the grid.
    def draw(n):
        return rng.normal(scale=0.3, size=(n, 5))

    r = parzen.parzen_estimate(draw(3000), draw(300), draw(400))
    assert r.sigma == max(r.valid_scores, key=r.valid_scores.get)
    assert parzen.SIGMAS[0] < r.sigma < parzen.SIGMAS[-1]
    assert r.n_test == 400 and r.n_samples == 3000
    assert 0 < r.stderr < 1
    # Samples far from the data score far worse than samples from it.
    worse = parzen.parzen_estimate(draw(3000) + 3.0, draw(300), draw(400))
    assert worse.mean < r.mean - 10


def test_parzen_rejects_bad_input_by_name():
    with pytest.raises(ValueError, match="samples: contains NaN"):
        parzen.log_likelihoods(np.zeros((2, 3)), np.full((2, 3), np.nan), 0.5)
    with pytest.raises(ValueError, match="dimensions"):
        parzen.log_likelihoods(np.zeros((2, 3)), np.zeros((2, 4)), 0.5)


# ---- mode coverage ----

RING = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)


def test_samples_at_the_modes_cover_all_with_full_quality():
    r = modes.mode_coverage(np.repeat(RING, 10, axis=0), RING, 0.01)
    assert r.modes_covered == 8 and r.high_quality == 1.0
    assert r.reverse_kl == pytest.approx(0.0, abs=1e-12)
    assert r.counts == [10] * 8


def test_one_mode_only_covers_one_with_reverse_kl_log_k():
    r = modes.mode_coverage(np.repeat(RING[:1], 100, axis=0), RING, 0.01)
    assert r.modes_covered == 1 and r.high_quality == 1.0
    assert r.reverse_kl == pytest.approx(math.log(8))


def test_samples_off_the_modes_are_low_quality():
    rng = np.random.default_rng(0)
    near = RING[rng.integers(0, 8, 800)] + rng.normal(scale=0.01, size=(800, 2))  # ~99% within 3 sigma
    far = np.zeros((200, 2))  # the ring's centre: 1 away from every mode, 100 sigma
    r = modes.mode_coverage(np.concatenate([near, far]), RING, 0.01)
    assert r.modes_covered == 8
    assert 0.78 < r.high_quality < 0.80
    assert r.reverse_kl < 0.02


def test_mode_coverage_rejects_bad_shapes():
    with pytest.raises(ValueError, match="samples"):
        modes.mode_coverage(np.zeros((5, 3)), RING, 0.01)


# ---- Frechet distance and class balance ----


def test_frechet_distance_of_identical_sets_is_zero_and_grows_with_shift():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2000, 16))
    mu, cov = f.mean(0), np.cov(f, rowvar=False)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, mean moved by 2 along one axis: the distance is exactly 4.
    shifted = mu.copy()
    shifted[0] += 2.0
    assert frechet_distance(mu, cov, shifted, cov) == pytest.approx(4.0, abs=1e-6)


def test_frechet_distance_of_gaussians_with_different_scales():
    # N(0, I) vs N(0, 4 I) in d dims: Tr(I + 4I - 2 * 2I) = d.
    d = 8
    assert frechet_distance(np.zeros(d), np.eye(d), np.zeros(d), 4 * np.eye(d)) == pytest.approx(d)


def test_class_balance_even_and_collapsed():
    even = np.eye(10)[np.arange(1000) % 10]  # one-hot "probabilities"
    shares, min_share, entropy = class_balance(even)
    assert min_share == pytest.approx(0.1) and entropy == pytest.approx(math.log(10))
    collapsed = np.eye(10)[np.zeros(100, dtype=int)]
    shares, min_share, entropy = class_balance(collapsed)
    assert shares[0] == 1.0 and min_share == 0.0 and entropy == pytest.approx(0.0)


# ---- 1-D densities (toy1d metrics, Theorem 1) ----


def test_kde_and_jsd_of_gaussians():
    grid = np.linspace(-8, 8, 4001)
    dx = grid[1] - grid[0]
    rng = np.random.default_rng(0)
    p = np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
    q = density1d.kde(rng.normal(size=50_000), grid)
    assert q.sum() * dx == pytest.approx(1.0, abs=1e-3)
    assert density1d.jsd(p, q, dx) < 1e-3  # samples of p itself
    far = np.exp(-0.5 * (grid - 6) ** 2) / math.sqrt(2 * math.pi)
    assert density1d.jsd(p, far, dx) > 0.6  # nearly disjoint: close to log 2
    assert density1d.criterion_from_jsd(0.0) == pytest.approx(-math.log(4))


# ---- metric selection (run_metrics) and seed aggregation ----


def test_toy1d_metrics_of_the_data_itself_reach_the_optimum():
    from training.data.toy import TOY1D_MEAN, TOY1D_STD
    from training.evaluation.run_metrics import evaluate

    def sample_data(n, seed):
        return np.random.default_rng(seed).normal(TOY1D_MEAN, TOY1D_STD, size=(n, 1)).astype(np.float32)

    m = evaluate("toy1d", {}, sample_data, 50_000, progress=False)
    assert m["jsd"].value < 2e-3
    assert m["criterion_c"].value == pytest.approx(-math.log(4), abs=5e-3)
    assert m["sample_std"].value == pytest.approx(TOY1D_STD, rel=0.02)
    # A generator stuck at one point is far from the optimum.
    stuck = evaluate("toy1d", {}, lambda n, seed: np.full((n, 1), TOY1D_MEAN, np.float32), 5_000, progress=False)
    assert stuck["criterion_c"].value > -math.log(4) + 0.5


def test_mode_metrics_of_the_mixture_itself_cover_everything():
    from training.data.toy import mixture_modes, mixture_sigma
    from training.evaluation.run_metrics import evaluate

    centres, sigma = mixture_modes("grid25"), mixture_sigma("grid25")

    def sample_mixture(n, seed):
        rng = np.random.default_rng(seed)
        return centres[rng.integers(0, len(centres), n)] + rng.normal(scale=sigma, size=(n, 2))

    m = evaluate("grid25", {}, sample_mixture, progress=False)
    assert m["modes_covered"].value == 25
    assert m["high_quality_share"].value > 0.98  # 3 sigma in 2-D holds 98.9% of the mass
    assert m["mode_reverse_kl"].value < 0.02


def test_seed_sweep_aggregate_mean_and_stderr():
    from training.evaluation.seed_sweep import aggregate

    a = aggregate([{"modes_covered": 8.0}, {"modes_covered": 6.0}, {"modes_covered": 7.0}])["modes_covered"]
    assert a["mean"] == 7.0 and a["min"] == 6.0 and a["max"] == 8.0
    assert a["stderr"] == pytest.approx(1.0 / math.sqrt(3))
