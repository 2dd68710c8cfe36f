"""The two CPU engines (service/runtime/backends.py): OpenVINO serves the same models as onnxruntime with
the same card checks, warm-up and answers within float tolerance; auto picks one with the figures
that decided it. Skipped where OpenVINO is not installed (the dev extra installs it)."""

from __future__ import annotations

import numpy as np
import pytest

from service.core import latents
from service.runtime import backends
from service.runtime.engine import Engine, EngineError
from tests.service.model_factory import make_model

pytestmark = pytest.mark.skipif(not backends.openvino_available(), reason="the OpenVINO runtime is not installed")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("backends")
    make_model(root, "plain", shape=(1, 8, 8), z_dim=16)
    make_model(root, "vector", kind="vector", shape=(2,), z_dim=4, distribution="normal")
    make_model(root, "cond", classes=4, shape=(1, 4, 4), z_dim=6)
    make_model(
        root, "gonly", discriminator=False, latent_shape=[5, 1, 1], shape=(3, 4, 4), z_dim=5, distribution="normal"
    )
    return root


@pytest.fixture(scope="module")
def engines(models_dir):
    return {
        b: Engine(models_dir, device="cpu", default_model="plain", backend=b)
        for b in (backends.ONNXRUNTIME, backends.OPENVINO)
    }


@pytest.mark.parametrize("name", ["plain", "vector", "cond", "gonly"])
def test_openvino_answers_as_onnxruntime_does(engines, name):
    ort_model, ov_model = engines[backends.ONNXRUNTIME].get(name), engines[backends.OPENVINO].get(name)
    assert ov_model.backend == backends.OPENVINO and ov_model.provider == backends.OPENVINO_CPU
    assert ort_model.backend == backends.ONNXRUNTIME and ort_model.provider == "CPUExecutionProvider"
    n = 37
    z = latents.draw(latents.generator(5), ov_model.card.latent, n)
    c = np.arange(n) % 4 if name == "cond" else None
    x_ov, x_ort = ov_model.generate(z, c), ort_model.generate(z, c)
    assert x_ov.shape == x_ort.shape == (n, *ov_model.card.sample.shape)
    np.testing.assert_allclose(x_ov, x_ort, rtol=1e-4, atol=1e-5)
    # the other two ways to run a graph give the same answers
    np.testing.assert_allclose(ov_model.generate_inline(z, c), x_ov, rtol=1e-6, atol=1e-6)
    if ov_model.has_discriminator:
        np.testing.assert_allclose(ov_model.logits(x_ort, c), ort_model.logits(x_ort, c), rtol=1e-4, atol=1e-4)


def test_openvino_refuses_a_tampered_graph_like_onnxruntime(tmp_path):
    from tests.service.model_factory import corrupt

    corrupt(make_model(tmp_path, "broken"))
    make_model(tmp_path, "good")
    engine = Engine(tmp_path, device="cpu", default_model="good", backend=backends.OPENVINO)
    assert list(engine.models) == ["good"]
    assert "sha256 does not match the card" in engine.unavailable["broken"]


def test_auto_times_both_and_says_why(models_dir):
    engine = Engine(models_dir, device="cpu", default_model="plain", backend="auto")
    model = engine.get("plain")
    assert model.backend in (backends.ONNXRUNTIME, backends.OPENVINO)
    assert model.backend_reason.startswith("backend=auto: openvino ")
    assert "n=1: openvino" in model.backend_reason and "n=1024: openvino" in model.backend_reason
    # whichever won, it serves the same samples within tolerance
    z = latents.draw(latents.generator(1), model.card.latent, 8)
    ref = Engine(models_dir, device="cpu", default_model="plain", only="plain").get("plain")
    np.testing.assert_allclose(model.generate(z), ref.generate(z), rtol=1e-4, atol=1e-5)


def test_choose_keeps_onnxruntime_on_a_tie_and_switches_when_faster():
    """auto's decision from injected figures (samples/s per backend), not from a wall clock."""

    class Named:
        def __init__(self, name: str):
            self.name = name

        def run(self, _, feeds):
            return self.name

    def choose(figures: dict[str, float]) -> backends.Choice:
        sessions = {name: Named(name) for name in figures}
        return backends.choose("auto", sessions, lambda n: {"z": np.zeros((n, 1))}, rate=lambda run, n: figures[run()])

    assert choose({"onnxruntime": 1000.0, "openvino": 1000.0}).backend == "onnxruntime"  # a tie
    assert choose({"onnxruntime": 1000.0, "openvino": 1040.0}).backend == "onnxruntime"  # within the margin
    faster = choose({"onnxruntime": 1000.0, "openvino": 4000.0})
    assert faster.backend == "openvino" and "faster" in faster.reason and "4.00x" in faster.reason
    assert faster.samples_per_s == {
        b: {n: r for n in backends.PROBE_SIZES} for b, r in (("onnxruntime", 1000.0), ("openvino", 4000.0))
    }


def test_openvino_with_cuda_is_refused():
    with pytest.raises(EngineError, match="backend=openvino runs on the CPU only"):
        Engine("models", device="cuda", backend=backends.OPENVINO)
