"""Large RGB images (256x256, the largest `pack` accepts): one answer holds at most
core/requests.py MAX_VALUES values, so max n (sized for small samples) cannot ask for gigabytes.

service.http.handlers and service.core.schemas are imported inside the tests: schemas reads max n from the
settings when first imported, which must be after conftest.py has set the test settings."""

from __future__ import annotations

import pytest

from service.runtime.engine import Engine
from tests.service.model_factory import make_model


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    models = tmp_path_factory.mktemp("large")
    make_model(models, "big", shape=(3, 256, 256), z_dim=2, discriminator=False)
    return Engine(models, device="cpu", default_model="big")


def test_too_many_large_images_are_refused_naming_n(engine, monkeypatch) -> None:
    from service.core import requests
    from service.core.problems import RequestError
    from service.core.schemas import InterpolateRequest, SampleRequest
    from service.http import handlers

    size = 3 * 256 * 256
    assert (1 << 26) // size == 341  # the real bound for 256x256 RGB
    monkeypatch.setattr(requests, "MAX_VALUES", 4 * size)  # within the test settings' max n
    with pytest.raises(RequestError) as e:
        handlers.sample(engine, SampleRequest(n=5, format="npy"), 1)
    assert e.value.field == "n" and "at most 4 samples of big (3x256x256)" in e.value.problem
    with pytest.raises(RequestError) as e:
        handlers.interpolate(engine, InterpolateRequest(steps=5, format="npy"))
    assert e.value.field == "steps"
    assert handlers.sample(engine, SampleRequest(n=4, format="npy"), 1).status_code == 200


def test_a_few_large_rgb_images_are_served_as_one_png_grid(engine) -> None:
    from service.core.schemas import SampleRequest
    from service.http import handlers

    r = handlers.sample(engine, SampleRequest(n=2, seed=1, format="png"), 1)
    assert r.status_code == 200 and r.body[:8] == b"\x89PNG\r\n\x1a\n"
