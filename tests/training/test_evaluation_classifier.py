"""The committed evaluation classifiers: they load without downloads, meet the accuracy measured
when they were built, and their metrics tell real digits from collapsed or noisy ones."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import load_dataset
from training.evaluation.classifier import load_classifier, train_classifier
from training.evaluation.frechet import digit_metrics

# Held-out (test split) accuracies measured when the weights were built, less a small margin:
# mnist5k 0.966 (15 epochs), digits 0.995 (30 epochs).
MIN_ACCURACY = {"mnist5k": 0.95, "digits": 0.98}


@pytest.mark.parametrize("dataset", ["digits", "mnist5k"])
def test_committed_classifier_accuracy_on_held_out_split(dataset, torch_single_thread):
    clf = load_classifier(dataset)
    test = load_dataset(dataset, "test")
    acc = clf.accuracy_on(test.x.numpy(), test.y.numpy())
    assert acc >= MIN_ACCURACY[dataset]
    assert acc == pytest.approx(clf.accuracy, abs=1e-9)  # the recorded number is the real one


def test_digit_metrics_tell_real_from_collapsed_and_noise(torch_single_thread):
    clf = load_classifier("digits")
    train, valid = load_dataset("digits", "train").x.numpy(), load_dataset("digits", "valid").x.numpy()
    real = digit_metrics(clf, train, valid)
    assert real.min_share > 0.05 and real.confidence > 0.9
    labels = load_dataset("digits", "train").y.numpy()
    ones = train[labels == 1]
    collapsed = digit_metrics(clf, ones, valid)
    assert collapsed.min_share == 0.0 and collapsed.entropy < 0.5
    assert collapsed.frechet > 3 * real.frechet
    noise = np.random.default_rng(0).random(train.shape).astype(np.float32)
    assert digit_metrics(clf, noise, valid).frechet > 3 * real.frechet


def test_missing_classifier_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no classifier for dataset 'nope'.*python -m training.evaluation"):
        load_classifier("nope", tmp_path / "nope.safetensors")


def test_classifier_training_is_deterministic(torch_single_thread):
    # Two short trainings on the same data give bit-identical weights.
    split = load_dataset("digits", "valid")
    x, y = split.x.numpy(), split.y.numpy()
    a = train_classifier(x, y, (0.0, 1.0), epochs=1, seed=3, progress=False)
    b = train_classifier(x, y, (0.0, 1.0), epochs=1, seed=3, progress=False)
    for (name, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert (pa == pb).all(), name
