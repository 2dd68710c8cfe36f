"""What calibration trains and measures D on, each from a seed of its own so that no held-out
sample is ever trained on: the data's splits, G's held-out samples against them, uniform noise, and
the samples of G over which max_logit, gamma and the acceptance are measured.
"""

from __future__ import annotations

import numpy as np

from models.card import ModelCard
from training.data import load_dataset
from training.evaluation.samplers import balanced_labels
from training.served_d import CalibrationError

REALNESS_SAMPLES = 10_000  # G's samples over which max_logit, gamma and the acceptance are measured
HELD_OUT_FAKES = 5_000  # at most this many of G's samples against each held-out real split
# Latent seeds of G's samples: training draws from TRAIN_SEED + step, the held-out sets and the
# realness measurement from their own seeds, so no held-out sample is ever trained on.
TRAIN_SEED, VALID_SEED, TEST_SEED, REALNESS_SEED, NOISE_SEED = 1_000_000, 7001, 7002, 7003, 7004
# A conditional model's classes: of G's training samples (drawn from the training labels) and of
# G's held-out samples (the held-out real labels, shuffled), each on its own stream.
CLASS_SEED = 7005


def split_of(card: ModelCard, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y): the split's samples and, for a conditional model, their labels (int64 (N,))."""
    options = card.training.config.get("dataset_options", {})
    data = load_dataset(card.dataset, split, **options)
    x = np.ascontiguousarray((data.x.numpy() if hasattr(data.x, "numpy") else np.asarray(data.x)).astype(np.float32))
    if card.condition is None:
        return x, None
    if data.y is None:
        raise CalibrationError(f"{card.dataset}: the {split} split has no labels; a conditional D needs them")
    y = np.ascontiguousarray(np.asarray(data.y, dtype=np.int64))
    if y.min(initial=0) < 0 or y.max(initial=0) >= card.condition.classes:
        raise CalibrationError(f"{card.dataset}: {split} labels outside [0, {card.condition.classes})")
    return x, y


def held_out_fakes(sample, real: tuple, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """G's held-out samples against a real held-out set: at most HELD_OUT_FAKES, from `seed`'s
    latents; a conditional G's take the real set's labels (shuffled), so the two sides have the
    same classes and only D's judgement of x within a class separates them."""
    x, y = real
    n = min(len(x), HELD_OUT_FAKES)
    if y is None:
        return sample(n, seed), None
    c = y[np.random.default_rng([CLASS_SEED, seed]).permutation(len(y))[:n]]
    return sample(n, seed, c), c


def noise_of(card: ModelCard, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Uniform noise over the value range and, for a conditional model, uniform random classes."""
    lo, hi = card.sample.value_range
    rng = np.random.default_rng(NOISE_SEED)
    x = rng.uniform(lo, hi, size=(n, *card.sample.shape)).astype(np.float32)
    return x, None if card.condition is None else rng.integers(card.condition.classes, size=n, dtype=np.int64)


def realness_set(sample, card: ModelCard) -> tuple[np.ndarray, np.ndarray | None]:
    """The REALNESS_SAMPLES of G over which max_logit and gamma are measured; a conditional G's
    over its classes in turn, as export measured max_logit (every class equally)."""
    if card.condition is None:
        return sample(REALNESS_SAMPLES, REALNESS_SEED), None
    c = balanced_labels(REALNESS_SAMPLES, card.condition.classes)
    return sample(REALNESS_SAMPLES, REALNESS_SEED, c), c
