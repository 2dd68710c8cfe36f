"""export_run carries a run's metrics.json (written by `python -m training evaluate RUN_DIR`) onto
the card, with each metric's own method text (they were measured through torch)."""

from __future__ import annotations

import json

import pytest

from models.card import load_model_folder
from training.__main__ import main as cli
from training.export import ExportError, export_run
from training.presets import resolve
from training.trainer import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")
TINY = ["network.g_hidden=[16]", "network.d_hidden=[8]", "batch_size=64"]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, torch_single_thread):
    run = train(resolve("ring8", TINY), tmp_path_factory.mktemp("run") / "ring8", max_steps=5, progress=False)
    assert cli(["evaluate", str(run)]) == 0
    return run


def test_run_metrics_go_onto_the_card(evaluated_run, tmp_path):
    recorded = json.loads((evaluated_run / "metrics.json").read_text())["metrics"]
    assert {"modes_covered", "high_quality_share"} <= recorded.keys()
    card, _ = load_model_folder(export_run(evaluated_run, name="m", out_dir=tmp_path, progress=False))
    assert card.metrics.keys() == recorded.keys()
    for name, metric in recorded.items():
        assert card.metrics[name].model_dump(mode="json") == metric, name
        assert card.metrics[name].method == metric["method"] and metric["method"]


def test_a_run_without_metrics_exports_none(tmp_path):
    run = train(resolve("ring8", TINY), tmp_path / "run", max_steps=2, progress=False)
    card, _ = load_model_folder(export_run(run, name="m", out_dir=tmp_path / "models", progress=False))
    assert card.metrics == {}


def test_metrics_of_another_checkpoint_are_refused(evaluated_run, tmp_path):
    stale = json.loads((evaluated_run / "metrics.json").read_text())
    run = tmp_path / "run"
    train(resolve("ring8", TINY), run, max_steps=5, progress=False)
    (run / "metrics.json").write_text(json.dumps({**stale, "step": 3}))
    with pytest.raises(ExportError, match=r"metrics.json: measured at step 3, but the latest checkpoint is step 5"):
        export_run(run, name="m", out_dir=tmp_path / "models", progress=False)
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(ExportError, match="metrics.json: not a metrics file"):
        export_run(run, name="m", out_dir=tmp_path / "models", progress=False)
