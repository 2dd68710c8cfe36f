"""The engine on real model folders: verification, provider choice, runs, and faults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.runtime.engine import Engine, EngineError, ModelUnavailable, UnknownModel
from service.runtime.model import InferenceError
from service.runtime.providers import CPU, DeviceError
from tests.service.model_factory import corrupt, make_model


@pytest.fixture(scope="module")
def engine(service_models_dir: Path) -> Engine:
    return Engine(service_models_dir, device="cpu", default_model="tiny-digits", intra_op_threads=1)


def test_every_good_folder_loads_and_the_corrupted_one_is_unavailable(engine):
    assert sorted(engine.models) == ["faulty", "tiny-cond", "tiny-digits", "tiny-ring", "tiny-style"]
    reason = engine.unavailable["broken"]
    assert reason == "broken/generator.onnx: sha256 does not match the card (modified or corrupted)"  # relative path
    with pytest.raises(ModelUnavailable, match="'broken' is unavailable: .*generator.onnx"):
        engine.get("broken")


def test_a_graph_of_another_size_is_refused_by_its_size_before_its_sha256(tmp_path):
    """corrupt() keeps the size (the sha256 check is the one it tests); a file that grew is caught
    by the cheaper size check first, naming both sizes."""
    folder = make_model(tmp_path, "grown")
    with open(folder / "generator.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(EngineError) as refused:
        Engine(tmp_path, device="cpu", default_model="grown", intra_op_threads=1)
    assert "grown/generator.onnx" in str(refused.value) and "bytes, the card says" in str(refused.value)


def test_unknown_model_lists_the_models_there(engine):
    with pytest.raises(
        UnknownModel, match="unknown model 'nope'; models here: faulty, tiny-cond, tiny-digits, tiny-ring"
    ):
        engine.get("nope")


def test_provider_is_read_from_the_session_and_threads_are_capped(engine):
    model = engine.get("tiny-digits")
    assert model.provider == CPU and engine.providers == [CPU]
    assert model.sessions["generator"].get_providers()[0] == CPU
    assert model.sessions["generator"].get_session_options().intra_op_num_threads == 1


def test_generate_and_logits_have_the_card_shapes(engine):
    model = engine.get("tiny-digits")
    z = np.zeros((5, model.card.latent.dim), np.float32)
    x = model.generate(z)
    assert x.shape == (5, *model.card.sample.shape) and x.dtype == np.float32
    lo, hi = model.card.sample.value_range
    assert x.min() >= lo and x.max() <= hi  # sigmoid output: within the card's range
    assert model.logits(x).shape == (5,)


def test_no_model_named_means_the_default(engine):
    assert engine.get(None) is engine.get("tiny-digits")


def test_absent_default_falls_back_to_the_first_loaded_model(service_models_dir):
    fallback = Engine(service_models_dir, device="cpu", default_model="mnist")
    assert fallback.default_model == "faulty"  # the first servable folder by name


def test_an_onnxruntime_failure_is_an_inference_error_and_the_model_keeps_serving(engine):
    faulty = engine.get("faulty")
    with pytest.raises(InferenceError, match="onnxruntime failed running faulty's generator"):
        faulty.generate(np.zeros((1, 3), np.float32))  # odd batch: its Reshape fails
    assert faulty.generate(np.zeros((2, 3), np.float32)).shape == (2, 1, 8, 8)


def test_a_broken_default_model_stops_the_engine_naming_folder_and_file(tiny_model_copy):
    folder = tiny_model_copy("tiny-digits")
    corrupt(folder, "discriminator.onnx")
    with pytest.raises(EngineError, match=r"default model 'tiny-digits' in .*tiny-digits.*discriminator\.onnx"):
        Engine(folder.parent, device="cpu", default_model="tiny-digits")


def test_a_graph_that_does_not_match_its_card_is_refused_naming_the_file(tmp_path):
    folder = make_model(tmp_path, "renamed")
    make_model(tmp_path, "good")
    card = json.loads((folder / "model.json").read_text())
    card["onnx"]["generator"]["inputs"][0]["name"] = "noise"  # the graph's input is "z"
    (folder / "model.json").write_text(json.dumps(card))
    engine = Engine(tmp_path, device="cpu", default_model="good")
    assert "renamed/generator.onnx" in engine.unavailable["renamed"]
    assert "inputs" in engine.unavailable["renamed"]


def test_a_folder_without_a_card_and_an_empty_models_dir(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(EngineError, match="no servable model"):
        Engine(tmp_path, device="cpu")
    make_model(tmp_path, "good")
    engine = Engine(tmp_path, device="cpu")
    assert "model.json: missing" in engine.unavailable["notes"]
    with pytest.raises(EngineError, match="does not exist"):
        Engine(tmp_path / "absent", device="cpu")


def test_a_graph_whose_sample_shape_differs_from_its_card_is_unavailable(tmp_path):
    folder = make_model(tmp_path, "lying", shape=(1, 8, 8))
    make_model(tmp_path, "good")
    card = json.loads((folder / "model.json").read_text())
    # A card promising 4x16 images for a graph that makes 8x8 ones.
    card["sample"]["shape"] = [1, 4, 16]
    card["onnx"]["generator"]["outputs"][0]["shape"] = ["batch", 1, 4, 16]
    card["onnx"]["discriminator"]["inputs"][0]["shape"] = ["batch", 1, 4, 16]
    (folder / "model.json").write_text(json.dumps(card))
    engine = Engine(tmp_path, device="cpu", default_model="good")
    assert "lying/generator.onnx" in engine.unavailable["lying"]


def test_from_folder_loads_that_folder_only(service_models_dir):
    # Its siblings include `broken`, which a whole-directory engine would verify and list.
    engine = Engine.from_folder(service_models_dir / "tiny-ring", device="cpu", intra_op_threads=1)
    assert list(engine.models) == ["tiny-ring"] and engine.unavailable == {}
    assert engine.default_model == "tiny-ring" and engine.get(None).card.name == "tiny-ring"
    assert engine.get(None).sessions["generator"].get_session_options().intra_op_num_threads == 1
    with pytest.raises(UnknownModel, match="models here: tiny-ring$"):
        engine.get("tiny-digits")


def test_from_folder_refuses_a_folder_that_cannot_serve_naming_it(service_models_dir, tmp_path):
    with pytest.raises(EngineError, match=r"default model 'broken' in .*broken.*generator\.onnx"):
        Engine.from_folder(service_models_dir / "broken", device="cpu")
    with pytest.raises(EngineError, match=r"absent: the model folder does not exist"):
        Engine.from_folder(tmp_path / "absent", device="cpu")
    (tmp_path / "notes").mkdir()
    with pytest.raises(EngineError, match=r"notes.*model\.json.*missing"):
        Engine.from_folder(tmp_path / "notes", device="cpu")


def test_device_cuda_where_none_works_is_a_startup_error_that_says_why(tmp_path):
    if any(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("this machine has an NVIDIA device: see test_gpu.py")
    make_model(tmp_path, "good")
    with pytest.raises(DeviceError, match="GANSERVE_DEVICE=cuda but CUDA does not work here: .+"):
        Engine(tmp_path, device="cuda")


def test_device_auto_without_a_gpu_uses_the_cpu(tmp_path):
    if any(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("this machine has an NVIDIA device")
    make_model(tmp_path, "good")
    engine = Engine(tmp_path, device="auto")
    assert engine.providers == [CPU] and "CPU" in engine.provider_note


def test_the_engine_never_imports_torch_or_training():
    import subprocess
    import sys

    code = (
        "import sys, service.runtime.engine, service.http.handlers, service.http.routes;"
        "bad = [m for m in ('torch', 'training') if m in sys.modules]; sys.exit(bool(bad))"
    )
    root = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
