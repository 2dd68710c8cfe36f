"""registry.Registry in process, over real model folders and real onnxruntime sessions: what poll
and explicit model control do to the engine, one round at a time (no thread, no server)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from service.core import versions
from service.runtime.engine import Engine, UnknownModel
from service.runtime.registry import ControlError, Registry
from tests.service.model_factory import corrupt, install, make_model

Z = np.full((2, 4), 0.5, np.float32)


@pytest.fixture
def setup(tmp_path):
    live, stage = tmp_path / "models", tmp_path / "stage"
    for k in range(3):
        make_model(stage / f"v{k}", "m", z_dim=4, seed=k)
    install(stage / "v0" / "m", live / "m")
    make_model(live, "other", z_dim=4, seed=9)
    engine = Engine(live, "cpu", default_model="m")
    return engine, live, stage


def test_poll_serves_new_swaps_changed_refuses_broken_and_retires_removed(setup):
    engine, live, stage = setup
    registry = Registry(engine, "poll", 1.0)
    v0 = engine.get("m")
    registry.scan()
    assert engine.get("m") is v0  # nothing changed: same sessions
    install(stage / "v1" / "m", live / "m")
    registry.scan()
    v1 = engine.get("m")
    assert v1.card.version != v0.card.version and engine.retired["m"] == [v0.card.version]
    assert not np.array_equal(v1.generate(Z), v0.generate(Z))
    np.testing.assert_array_equal(v0.generate(Z), v0.generate(Z))  # an in-flight holder of v0 still runs it
    with pytest.raises(versions.VersionGone, match=v0.card.version):
        versions.pinned(engine, "m", v0.card.version)
    # A broken change never replaces the working version; the refusal is recorded.
    install(stage / "v2" / "m", live / "m")
    corrupt(live / "m")
    registry.scan()
    assert engine.get("m") is v1 and engine.refused["m"].startswith(
        "m/generator.onnx: sha256 "
    )  # same size, other bytes
    install(stage / "v2" / "m", live / "m")  # fixed
    registry.scan()
    assert engine.get("m").card.version != v1.card.version and "m" not in engine.refused
    # A new folder serves; a removed one retires; the default moves to a served model.
    make_model(live, "fresh", z_dim=4, seed=5)
    registry.scan()
    assert engine.get("fresh").generate(Z).shape == (2, 1, 8, 8)
    shutil.rmtree(live / "m")
    registry.scan()
    with pytest.raises(UnknownModel):
        engine.get("m")
    assert engine.default_model == "fresh" and len(engine.retired["m"]) == 3
    # A new folder that fails verification is unavailable (no working version to keep).
    corrupt(make_model(live, "bad", z_dim=4))
    registry.scan()
    assert "bad" in engine.unavailable and "bad" not in engine.models


def test_explicit_load_unload_and_a_second_worker_follows(setup, tmp_path):
    engine, live, stage = setup
    control = tmp_path / "control.jsonl"
    first = Registry(engine, "explicit", 1.0, control)
    second_engine = Engine(live, "cpu", default_model="m")
    second = Registry(second_engine, "explicit", 1.0, control)
    install(stage / "v1" / "m", live / "m")
    first.follow()
    assert engine.get("m").card.version == second_engine.get("m").card.version  # explicit: no change by itself
    assert first.request("load", "m")["version"] == engine.get("m").card.version != second_engine.get("m").card.version
    second.follow()
    assert second_engine.get("m").card.version == engine.get("m").card.version
    first.request("unload", "other")
    second.follow()
    assert "other" not in engine.models and "other" not in second_engine.models
    # A worker that starts later serves what the others serve.
    third_engine = Engine(live, "cpu", default_model="m")
    Registry(third_engine, "explicit", 1.0, control)
    assert sorted(third_engine.models) == ["m"]
    with pytest.raises(ControlError, match="no model folder 'nope'") as e:
        first.request("load", "nope")
    assert e.value.status == 404
    corrupt(live / "m")
    with pytest.raises(ControlError, match="failed to load") as e:
        first.request("load", "m")
    assert e.value.status == 400 and "m" in engine.models  # the working version keeps serving
    with pytest.raises(ControlError, match="need GANSERVE_MODEL_CONTROL=explicit"):
        Registry(engine, "poll", 1.0).request("load", "m")
