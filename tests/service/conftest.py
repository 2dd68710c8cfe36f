"""Fixtures for the service's tests: a models dir, the in-process app, and its test client.

The models dir holds the really trained `tiny-digits` and `tiny-ring` (tests/conftest.py), the
style-based `tiny-style` packed from a network written in the tests (tests/style_factory.py), plus
two folders made with onnx.helper (model_factory.py) for the faults the service must survive:
`faulty` (its generator fails inside onnxruntime for odd batch sizes) and `broken` (its generator
file no longer matches the card's sha256).

One app per test session: a second `GanServe.to_asgi()` in one process fails on duplicate
Prometheus metrics (../shared/STACK.md). Its settings come from the environment, set here before
`service.service` is first imported (it reads them at import).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.model_extras import add_directions, add_tiny_encoder
from tests.service.model_factory import corrupt, make_model
from tests.service.support import COND, MAX_N, STYLE, THIRD_PARTY_WARNINGS, TOKEN, real_server_env, service_env
from tests.style_factory import pack_into


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            for spec in THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def service_models_dir(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("service") / "models"
    shutil.copytree(tiny_models_dir, models)
    make_model(models, "faulty", z_dim=3, fail_on_odd_batch=True)
    corrupt(make_model(models, "broken"))
    make_model(models, COND, classes=3)  # a conditional pair p(x | c): classes class0, class1, class2
    pack_into(models, STYLE, tmp_path_factory.mktemp("foreign-style"))  # mapping + synthesis, conditional
    for name in (COND, STYLE):  # learned inference for /invert: E in z, and in w; editing directions
        add_tiny_encoder(models / name)
        add_directions(models / name)
    return models


@pytest.fixture(scope="session")
def app(service_models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """GanServe as an ASGI app, imported under the test settings (once per session)."""
    env = service_env(service_models_dir, tmp_path_factory.mktemp("app"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        from service.settings import get_settings

        get_settings.cache_clear()
        for early in ("service.service", "service.core.schemas"):  # both read the settings at import
            if early in sys.modules:
                pytest.fail(f"{early} was imported before the test settings were set: ask for `app` first")
        from service.service import GanServe

        assert get_settings().max_n == MAX_N
        yield GanServe.to_asgi()


@pytest.fixture(scope="session")
def client(app):
    """A starlette TestClient that carries the bearer token (inside `with`: lifespan runs)."""
    from starlette.testclient import TestClient

    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def real_server(service_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The base URL of one `python -m service serve` of the models dir under the test settings,
    shared by the test modules that only call it (clients); stopped at the end of the session."""
    from tests.servers import start_server

    root = tmp_path_factory.mktemp("real-server")
    with start_server(service_models_dir, real_server_env(service_models_dir, root), root) as running:
        yield running.url
