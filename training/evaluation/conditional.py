"""Is a conditional G's labelled data right, and worth training on?

- Label agreement: the share of samples G(z, c) that the project's own classifier (trained on real
  digits, training/evaluation/classifier.py) assigns to the requested class c; also per class.
- Per-class Frechet distance: the Frechet distance of that classifier's 64-d features between
  G(z, c) and the held-out real digits of class c, for each c.
- Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained *only* on generated,
  labelled samples, tested on the real test split, against the same classifier (same network,
  recipe and seed) trained on the real training split. A CAS near the real-data accuracy says the
  synthetic set carries what a classifier needs of each class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.evaluation.classifier import CLASSES, Classifier, train_classifier
from training.evaluation.frechet import feature_stats, frechet_distance
from training.evaluation.samplers import balanced_labels

CAS_EPOCHS = 15  # the project classifier's recipe (training/evaluation/classifier.py build)
CAS_SEED = 0


@dataclass(frozen=True)
class Agreement:
    overall: float
    per_class: list[float]
    n: int


def label_agreement(clf: Classifier, x: np.ndarray, c: np.ndarray) -> Agreement:
    """Share of samples the classifier puts in their requested class, overall and per class."""
    _, probs = clf.features_and_probs(x)
    hit = probs.argmax(axis=1) == np.asarray(c)
    per = [float(hit[c == k].mean()) if np.any(c == k) else float("nan") for k in range(CLASSES)]
    return Agreement(float(hit.mean()), per, int(len(c)))


def per_class_frechet(
    clf: Classifier, gen: np.ndarray, gen_c: np.ndarray, real: np.ndarray, real_y: np.ndarray
) -> list[float]:
    """Frechet distance of classifier features, class by class (generated class k vs real class k)."""
    fg, _ = clf.features_and_probs(gen)
    fr, _ = clf.features_and_probs(real)
    out = []
    for k in range(CLASSES):
        a, b = fg[gen_c == k], fr[real_y == k]
        if len(a) < 2 or len(b) < 2:
            out.append(float("nan"))
            continue
        out.append(frechet_distance(*feature_stats(a), *feature_stats(b)))
    return out


def classification_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    value_range: tuple[float, float],
    *,
    max_batches: int,
    progress: bool = False,
) -> float:
    """Train the project's classifier recipe on (train_x, train_y) for `max_batches` updates (the
    same budget whatever the set's size, so only the data differs); its accuracy on the test set."""
    epochs = -(-max_batches * 64 // len(train_x)) + 1
    clf = train_classifier(
        train_x, train_y, value_range, epochs=epochs, seed=CAS_SEED, progress=progress, max_batches=max_batches
    )
    return clf.accuracy_on(test_x, test_y)


def cas_labels(n: int, classes: int) -> np.ndarray:
    """The classes of a CAS training set: balanced, as the real training split nearly is."""
    return balanced_labels(n, classes)
