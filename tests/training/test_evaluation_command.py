"""`python -m training evaluate` on real tiny runs and exported models (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from models.card import read_card
from training.__main__ import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_evaluate_model_folder_records_mode_metrics_on_the_card(tiny_model_copy, capsys):
    folder = tiny_model_copy("tiny-ring")
    assert main(["evaluate", str(folder), "--samples", "500"]) == 0
    out = capsys.readouterr().out
    assert "modes_covered" in out and "recorded in" in out
    card = read_card(folder)  # still a valid card, now with metrics
    m = card.metrics
    assert 0 <= m["modes_covered"].value <= 8
    assert m["modes_covered"].details["n_modes"] == 8
    assert sum(m["modes_covered"].details["counts"]) == round(500 * m["high_quality_share"].value)
    assert "3 sigma" in m["high_quality_share"].method


def test_evaluate_digits_model_measures_parzen_and_classifier_metrics(tiny_model_copy, capsys):
    folder = tiny_model_copy("tiny-digits")
    before = read_card(folder)
    assert main(["evaluate", str(folder), "--samples", "400"]) == 0
    m = read_card(folder).metrics
    for name in (
        "parzen_log_likelihood",
        "parzen_log_likelihood_of_training_data",
        "frechet_distance",
        "classifier_confidence",
        "digit_min_share",
        "digit_entropy",
    ):
        assert name in m, name
    assert m["parzen_log_likelihood"].stderr > 0
    assert m["parzen_log_likelihood"].details["sigma"] in [
        pytest.approx(s) for s in (0.1 * 10 ** (i / 9) for i in range(10))
    ]
    # Real training digits beat a generator trained 20 steps, on the same protocol.
    assert m["parzen_log_likelihood_of_training_data"].value > m["parzen_log_likelihood"].value
    assert m["frechet_distance"].details["real_training_digits"] < m["frechet_distance"].value
    assert read_card(folder).files == before.files  # only metrics changed


def test_evaluate_run_dir_writes_metrics_json(tiny_models_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_models_dir.parent / "runs" / "tiny-ring", run)
    assert main(["evaluate", str(run), "--samples", "300"]) == 0
    data = json.loads((run / "metrics.json").read_text())
    assert set(data["metrics"]) == {"modes_covered", "high_quality_share", "mode_reverse_kl"}
    assert data["step"] == 20


def test_evaluate_no_record_writes_nothing(tiny_model_copy, capsys):
    folder = tiny_model_copy("tiny-ring")
    before = (folder / "model.json").read_bytes()
    assert main(["evaluate", str(folder), "--samples", "200", "--no-record"]) == 0
    assert (folder / "model.json").read_bytes() == before
    assert "recorded" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda p: p, "not a run directory or model folder"),
        (lambda p: (p.mkdir(), p)[1], "no checkpoint"),
        (lambda p: (p.mkdir(), (p / "model.json").write_text("{oops"), p)[2], "model.json: not valid JSON"),
    ],
)
def test_evaluate_bad_paths_are_clear_errors(tmp_path, capsys, setup, needle):
    path = setup(tmp_path / "thing")
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_evaluate_rejects_too_few_samples(tiny_model_copy, capsys):
    assert main(["evaluate", str(tiny_model_copy("tiny-ring")), "--samples", "1"]) == 2
    assert "--samples" in capsys.readouterr().err
