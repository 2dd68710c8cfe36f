"""The CUDA provider, on a machine where one really works; skipped cleanly everywhere else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.core import latents
from service.runtime.engine import Engine
from service.runtime.providers import CPU, CUDA, DeviceError
from tests.service.model_factory import make_model

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_models(tmp_path_factory) -> Path:
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("no NVIDIA device on this machine")
    models = tmp_path_factory.mktemp("gpu") / "models"
    make_model(models, "digits", shape=(1, 8, 8), z_dim=16)
    try:
        Engine(models, device="cuda")
    except DeviceError as e:  # a GPU without the CUDA 13 / cuDNN 9 libraries (the `cuda` extra)
        pytest.skip(str(e))
    return models


def test_cuda_is_the_provider_really_in_use(gpu_models):
    engine = Engine(gpu_models, device="cuda")
    model = engine.get("digits")
    assert model.provider == CUDA
    assert model.sessions["generator"].get_providers()[0] == CUDA
    assert Engine(gpu_models, device="auto").get("digits").provider == CUDA


def test_cuda_and_cpu_give_the_same_samples_and_logits_up_to_float_tolerance(gpu_models):
    on_gpu = Engine(gpu_models, device="cuda").get("digits")
    on_cpu = Engine(gpu_models, device="cpu").get("digits")
    assert on_cpu.provider == CPU
    z = latents.draw(latents.generator(42), on_gpu.card.latent, 512)
    x_gpu, x_cpu = on_gpu.generate(z), on_cpu.generate(z)
    np.testing.assert_allclose(x_gpu, x_cpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(on_gpu.logits(x_gpu), on_cpu.logits(x_cpu), rtol=1e-4, atol=1e-4)
