"""Precision / recall, density / coverage and the feature-space metrics of RGB models, on cases
whose answers are known: the same set, disjoint sets, a collapsed generator, and real images
measured as if a generator had drawn them."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.manifold import density_coverage, kth_radius, precision_recall


def test_kth_radius_is_the_distance_to_the_kth_neighbour():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert np.allclose(kth_radius(x, 1), [1.0, 1.0, 4.0, 16.0])  # squared distances
    with pytest.raises(ValueError, match="more than k = 3"):
        kth_radius(x[:3], 3)


def test_the_same_set_is_precise_complete_and_covered():
    x = np.random.default_rng(0).standard_normal((400, 8))
    assert precision_recall(x, x) == (1.0, 1.0)
    density, coverage = density_coverage(x, x)
    assert coverage == 1.0 and 0.9 < density < 1.6


def test_disjoint_sets_score_zero():
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)
    assert density_coverage(real, fake) == (0.0, 0.0)


def test_a_collapsed_generator_is_precise_but_covers_little():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((500, 4))
    fake = np.repeat(real[:1], 500, axis=0) + 1e-3 * rng.standard_normal((500, 4))
    precision, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    assert precision == 1.0 and recall < 0.05 and coverage < 0.05


def test_real_emoji_measured_as_samples_sit_at_the_floor():
    from training.data import load_dataset
    from training.evaluation.feature_metrics import feature_metrics

    train = load_dataset("emoji", "train").x.numpy()
    shuffled = train[np.random.default_rng(7).permutation(len(train))]
    metrics = feature_metrics("emoji", {"size": 32, "sequences": True}, lambda n, seed: shuffled[:n])
    assert set(metrics) == {"frechet_distance", "precision", "recall", "density", "coverage"}
    fd, floor = metrics["frechet_distance"].value, metrics["frechet_distance"].details["real_training_images"]
    assert fd < 2 * floor + 1.0 and metrics["coverage"].value > 0.8
    noise = feature_metrics(
        "emoji",
        {"size": 32, "sequences": True},
        lambda n, s: np.random.default_rng(s).random((n, 3, 32, 32), np.float32),
    )
    assert noise["frechet_distance"].value > 5 * fd and noise["coverage"].value < 0.2
