"""Real images for a model folder, and how an inversion of them is judged.

The images are the splits of the data set the folder was trained on (its card's training config),
so E trains on the training split and is judged on valid + test, which neither G nor E saw. A
packed folder has no such record: E then learns from G's pairs alone, and the command says so.

Judged by, beside a reference that gives each figure meaning: the pixel error of the
reconstruction against the nearest training image's; the squared distance in a feature network's
64-d features (the data set's classifier, or one of the same sample shape) against the nearest
training image's; and where the data set has labels the classifier knows, the share of
reconstructions the classifier calls by the image's own label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from models.card import ModelCard
from training.data import load_dataset

# The classifier whose features measure a model of this sample shape when its data set has none of
# its own (training/evaluation/weights/): generic enough to tell a close reconstruction from a far one.
FEATURES_BY_SHAPE = {(1, 28, 28): "mnist5k", (3, 32, 32): "emoji"}
CHUNK = 500


@dataclass
class RealImages:
    x: np.ndarray  # (n, *sample_shape) float32 in the card's value range
    c: Optional[np.ndarray]  # (n,) int64 classes for a conditional model, else None
    labels: Optional[np.ndarray]  # (n,) the data set's labels where it has them (for class-keeping)


def real_images(card: ModelCard, splits: tuple[str, ...]) -> Optional[RealImages]:
    """The named splits of the folder's training data, or None for a folder with no training record."""
    if card.training is None or not card.training.config.get("dataset"):
        return None
    options = card.training.config.get("dataset_options", {})
    parts = [load_dataset(card.dataset, s, **options) for s in splits]
    x = np.concatenate([_np(p.x) for p in parts]).astype(np.float32)
    labels = None
    if all(p.y is not None for p in parts):
        labels = np.concatenate([_np(p.y) for p in parts]).astype(np.int64)
    c = labels if card.condition is not None else None
    if card.condition is not None and labels is None:
        raise ValueError(f"{card.dataset}: a conditional model's real images need labels; the data set has none")
    return RealImages(np.ascontiguousarray(x), c, labels)


def _np(t) -> np.ndarray:
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def feature_net(card: ModelCard):
    """(name, classifier, labels_apply): the data set's own classifier, else one of the same shape."""
    from training.evaluation.classifier import load_classifier
    from training.evaluation.feature_metrics import FEATURE_NET_FOR
    from training.evaluation.run_metrics import CLASSIFIER_FOR

    own = {**CLASSIFIER_FOR, **FEATURE_NET_FOR}.get(card.dataset)
    name = own or FEATURES_BY_SHAPE.get(tuple(card.sample.shape))
    if name is None:
        return None, None, False
    clf = load_classifier(name)
    if tuple(clf.sample_shape) != tuple(card.sample.shape):
        return None, None, False
    return name, clf, own is not None


def to_classifier_range(card: ModelCard, clf, x: np.ndarray) -> np.ndarray:
    lo, hi = card.sample.value_range
    clo, chi = clf.value_range
    return ((x - lo) / (hi - lo) * (chi - clo) + clo).astype(np.float32)


def nearest_sq_distance(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Each query's mean squared difference (per value) to its nearest row of `pool`."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    p = pool.reshape(len(pool), -1).astype(np.float64)
    p_sq = (p * p).sum(1)
    out = np.empty(len(q))
    for i in range(0, len(q), CHUNK):
        block = q[i : i + CHUNK]
        d = (block * block).sum(1)[:, None] - 2 * block @ p.T + p_sq[None]
        out[i : i + CHUNK] = np.maximum(d.min(1), 0.0) / q.shape[1]
    return out


@dataclass
class Judged:
    pixel_mse: float
    feature_distance: Optional[float]  # mean squared distance per feature, reconstruction vs image
    class_kept: Optional[float]  # share of reconstructions called by the image's label


@dataclass
class Reference:
    """The nearest training image of each held-out image, measured the same way."""

    pixel_mse: float
    feature_distance: Optional[float]
    classifier_accuracy: Optional[float]  # the classifier on the real images themselves
    feature_net: Optional[str]


class Judge:
    def __init__(self, card: ModelCard, held: RealImages, train: RealImages):
        self.card, self.held = card, held
        self.name, self.clf, labels_apply = feature_net(card)
        self.labels = held.labels if labels_apply else None
        self.held_feats, self.held_probs = self._features(held.x)
        train_feats = self._features(train.x)[0]
        acc = None
        if self.labels is not None and self.held_probs is not None:
            acc = float((self.held_probs.argmax(1) == self.labels).mean())
        self.reference = Reference(
            pixel_mse=float(nearest_sq_distance(held.x, train.x).mean()),
            feature_distance=None
            if self.held_feats is None
            else float(nearest_sq_distance(self.held_feats, train_feats).mean()),
            classifier_accuracy=acc,
            feature_net=self.name,
        )

    def first(self, m: int) -> Judge:
        """This judge over the first m held-out images only (for a way run on fewer, like projection)."""
        part = Judge.__new__(Judge)
        part.card, part.name, part.clf, part.reference = self.card, self.name, self.clf, self.reference
        part.held = RealImages(
            self.held.x[:m],
            None if self.held.c is None else self.held.c[:m],
            None if self.held.labels is None else self.held.labels[:m],
        )
        part.labels = None if self.labels is None else self.labels[:m]
        part.held_feats = None if self.held_feats is None else self.held_feats[:m]
        part.held_probs = None if self.held_probs is None else self.held_probs[:m]
        return part

    def _features(self, x: np.ndarray):
        if self.clf is None:
            return None, None
        return self.clf.features_and_probs(to_classifier_range(self.card, self.clf, x))

    def __call__(self, reconstructions: np.ndarray) -> Judged:
        pixel = float(np.mean((reconstructions - self.held.x) ** 2))
        feats, probs = self._features(reconstructions)
        fd = None if feats is None else float(np.mean((feats - self.held_feats) ** 2))
        kept = None
        if self.labels is not None and probs is not None:
            kept = float((probs.argmax(1) == self.labels).mean())
        return Judged(pixel, fd, kept)
