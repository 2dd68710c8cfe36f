"""The 503s of a service whose models are not (or no longer) there, in process.

On a real server these states cannot be reached over HTTP: BentoML builds the service (and so
loads every model) in the worker's lifespan, before its first answer; test_server_e2e.py watches
/readyz through a real start. Here the service's own state is set back to what it is before the
models load (no engine on the routes; an engine with no model), and the real routes answer.
"""

from __future__ import annotations

import pytest

from tests.service.support import DEFAULT

OPEN = {"Authorization": ""}
STILL_LOADING = "server: models are still loading"


@pytest.fixture
def routes_app():
    from service.service import ROUTES

    return ROUTES


def test_readyz_is_503_while_no_model_can_serve_and_200_after(client, routes_app, monkeypatch):
    engine = routes_app.state.engine
    with monkeypatch.context() as before_loading:
        before_loading.setattr(engine, "models", {})  # what GanServe.__is_ready__ reads
        assert client.get("/readyz", headers=OPEN).status_code == 503
        assert client.get("/livez", headers=OPEN).status_code == 200  # alive, only not ready
    assert client.get("/readyz", headers=OPEN).status_code == 200


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("GET", "/models", {}),
        ("POST", "/sample", {"json": {"n": 1}}),
        ("POST", "/interpolate", {"json": {"steps": 2}}),
        ("POST", "/score", {"json": {"samples": [[0.0]]}}),
        ("POST", "/score", {"content": b"\x93NUMPY", "headers": {"content-type": "application/x-npy"}}),
    ],
)
def test_every_route_answers_503_before_the_models_are_loaded(client, routes_app, method, path, kwargs):
    engine = routes_app.state.engine
    routes_app.state.engine = None  # as before GanServe.__init__ has loaded the models
    try:
        r = client.request(method, path, **kwargs)
    finally:
        routes_app.state.engine = engine
    assert r.status_code == 503, r.text
    assert r.json()["error"] == STILL_LOADING
    assert client.get("/models").json()["default_model"] == DEFAULT  # and serves again once loaded
