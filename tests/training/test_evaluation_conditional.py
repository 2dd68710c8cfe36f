"""Class-aware metrics of conditional models: label agreement, per-class Frechet distance and the
classification accuracy score (CAS), on a really trained tiny digits-cond run and its export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.card import read_card
from training.__main__ import main
from training.data import load_dataset
from training.evaluation import conditional as cond
from training.evaluation.classifier import load_classifier
from training.evaluation.samplers import balanced_labels, onnx_sampler
from training.export import export_run
from training.presets import resolve
from training.trainer import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def run_and_model(tmp_path_factory, torch_single_thread):
    root = tmp_path_factory.mktemp("evalcond")
    cfg = resolve("digits-cond", ["network.g_hidden=[32]", "network.d_hidden=[32]", "batch_size=64", "epochs=2"])
    run = train(cfg, root / "run", progress=False)
    return run, export_run(run, name="digits-cond", out_dir=root / "models", progress=False)


def test_label_agreement_of_real_digits_is_the_classifiers_accuracy():
    clf = load_classifier("digits")
    test = load_dataset("digits", "test")
    agree = cond.label_agreement(clf, test.x.numpy(), test.y.numpy())
    assert agree.overall == pytest.approx(clf.accuracy) and agree.n == 200
    assert len(agree.per_class) == 10 and min(agree.per_class) > 0.9


def test_cas_on_the_real_training_split_reproduces_the_classifiers_accuracy():
    # The real-data line of CAS is the committed classifier: the same network, recipe, seed and
    # number of updates, so retraining it on the real digits gives its accuracy exactly.
    clf = load_classifier("digits")
    train_split, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    budget = clf.meta["epochs"] * -(-clf.meta["n_train"] // 64)
    acc = cond.classification_accuracy(
        train_split.x.numpy(), train_split.y.numpy(), test.x.numpy(), test.y.numpy(), (0.0, 1.0), max_batches=budget
    )
    assert acc == pytest.approx(clf.accuracy)


def test_per_class_frechet_is_zero_for_identical_sets_and_positive_across_classes():
    clf = load_classifier("digits")
    held = load_dataset("digits", "valid")
    x, y = held.x.numpy(), held.y.numpy()
    same = cond.per_class_frechet(clf, x, y, x, y)
    assert len(same) == 10 and max(same) < 1e-6
    shifted = cond.per_class_frechet(clf, x, (y + 1) % 10, x, y)  # every class compared with another digit
    assert min(shifted) > 1.0


def test_the_sampler_makes_the_classes_it_is_given(run_and_model):
    _, folder = run_and_model
    sample = onnx_sampler(folder, read_card(folder))
    assert sample.classes == 10
    a, b = sample(20, 1), sample(20, 1, balanced_labels(20, 10))
    assert np.array_equal(a, b)  # no labels: classes in turn
    assert not np.array_equal(a, sample(20, 1, np.full(20, 3)))
    with pytest.raises(ValueError, match="labels"):
        sample(20, 1, np.full(20, 10))


def test_evaluate_a_conditional_run_records_class_metrics(run_and_model, capsys):
    run, _ = run_and_model
    assert main(["evaluate", str(run), "--samples", "400", "--cas-sizes", "200,400"]) == 0
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    for name in (
        "label_agreement",
        "frechet_distance_per_class_mean",
        "cas_200",
        "cas_400",
        "parzen_log_likelihood",
        "frechet_distance",
    ):
        assert name in m, name
    assert 0 <= m["label_agreement"]["value"] <= 1 and len(m["label_agreement"]["details"]["per_class"]) == 10
    per = m["frechet_distance_per_class_mean"]["details"]
    assert (
        len(per["per_class"]) == 10 and per["real_training_digits_mean"] < m["frechet_distance_per_class_mean"]["value"]
    )
    cas = m["cas_400"]
    assert cas["details"]["real_data_accuracy"] == pytest.approx(0.995) and 0 <= cas["value"] <= 1
    assert "Ravuri & Vinyals" in cas["method"] and "400 generated" in cas["method"]


def test_evaluate_a_conditional_model_folder_and_bad_cas_sizes(run_and_model, capsys):
    _, folder = run_and_model
    assert main(["evaluate", str(folder), "--samples", "300", "--cas-sizes", "none"]) == 0
    metrics = read_card(folder).metrics
    assert "label_agreement" in metrics and not any(k.startswith("cas_") for k in metrics)
    assert main(["evaluate", str(folder), "--cas-sizes", "4k"]) == 2
    assert "--cas-sizes" in capsys.readouterr().err


def test_conditional_toys_measure_label_agreement_by_nearest_mode(tmp_path):
    cfg = resolve("ring8-cond", ["network.g_hidden=[16]", "network.d_hidden=[16]", "batch_size=64"])
    run = train(cfg, tmp_path / "run", max_steps=3, progress=False)
    assert main(["evaluate", str(run), "--samples", "800", "--no-record"]) == 0
