"""Every route that runs a model is under admission control, by construction: the routes are read
from the ASGI app itself (test_guard.served_routes), and each must be either in ADMITTED, with a
valid request for it, or in NOT_ADMITTED, with the reason it does no request-sized model work. A
route added later is in neither, and fails here until someone decides which it is. /v2 infer ran
outside admission for sessions before this test; it would have failed it.

With the worker's budget held by another request, every admitted route's request waits, then is
refused with 503 and Retry-After; with the budget free, the same request is answered 200, so the
503 came from admission, not from the request.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.service.http.test_guard import served_routes
from tests.service.support import COND, DEFAULT, budget_held

# (method, path as served_routes gives it): why it is not admitted.
NOT_ADMITTED = {
    ("GET", "/"): "BentoML's docs page",
    ("GET", "/docs.json"): "the OpenAPI document",
    ("GET", "/schema.json"): "BentoML's schema",
    ("GET", "/static_content/probe"): "the docs page's files",
    ("GET", "/healthz"): "health",
    ("GET", "/livez"): "health",
    ("GET", "/readyz"): "health",
    ("GET", "/metrics"): "Prometheus",
    ("GET", "/models"): "the cards, no graph runs",
    ("GET", "/v2"): "server metadata",
    ("GET", "/v2/health/live"): "health",
    ("GET", "/v2/health/ready"): "health",
    ("GET", "/v2/models/x"): "model metadata",
    ("GET", "/v2/models/x/ready"): "model readiness",
    ("GET", "/v2/models/x/versions/x"): "model metadata",
    ("GET", "/v2/models/x/versions/x/ready"): "model readiness",
    ("GET", "/v2/x"): "the protocol's 404",
    ("POST", "/v2/repository/index"): "the repository's index",
    # An operator's call: the folder's verification runs its graphs once, at a fixed small batch.
    ("POST", "/v2/repository/models/x/load"): "model control",
    ("POST", "/v2/repository/models/x/unload"): "model control",
    # A dataset job is admitted block by block as it runs (datasets/sources.py), not at submit.
    ("POST", "/generate_dataset"): "dataset job: each block admitted",
    ("POST", "/generate_dataset/submit"): "dataset job: each block admitted",
    ("POST", "/generate_dataset/retry"): "dataset job: each block admitted",
    ("GET", "/generate_dataset/status"): "a job's status",
    ("GET", "/generate_dataset/get"): "a job's result",
    ("PUT", "/generate_dataset/cancel"): "a job's cancellation",
    ("GET", "/ui/"): "the playground's page (its calls go through the routes above)",
    ("GET", "/ui/app.js"): "the playground's files",
    ("GET", "/ui/plot.js"): "the playground's files",
    ("GET", "/ui/style.css"): "the playground's files",
    ("GET", "/ui/config.json"): "the playground's settings",
    ("GET", "/ui/login"): "the playground's sign-in",
    ("POST", "/ui/login"): "the playground's sign-in",
}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _v2_infer(path: str, model, n: int) -> tuple[str, dict]:
    from service.http.v2 import routes as v2

    inputs, outputs = v2.io_meta(model, "generator")
    z = np.zeros((n, *inputs[0].shape[1:]), np.float32)
    entry = {"name": inputs[0].name, "datatype": "FP32", "shape": list(z.shape)}
    head = json.dumps({"inputs": [{**entry, "parameters": {"binary_data_size": z.nbytes}}]}).encode()
    return path, {"content": head + z.tobytes(), "headers": {"Inference-Header-Content-Length": str(len(head))}}


def admitted_requests(engine) -> dict[tuple[str, str], tuple[str, dict]]:
    """(method, enumerated path) -> (the concrete path, httpx request arguments): a small valid
    request of each admitted route."""
    digits = engine.get(DEFAULT)
    shape = engine.get(COND).card.sample.shape  # /invert needs an encoder: the conditional pair has one
    images = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert shape == digits.card.sample.shape  # the same images go to /score
    infer = f"/v2/models/{DEFAULT}.generator"
    return {
        ("POST", "/sample"): ("/sample", {"json": {"n": 1, "seed": 1}}),
        ("GET", "/sample"): ("/sample", {"params": {"n": 1, "seed": 1}}),
        ("POST", "/interpolate"): ("/interpolate", {"json": {"seeds": [1, 2], "steps": 3}}),
        ("POST", "/score"): (
            f"/score?model={DEFAULT}",
            {"content": _npy(images), "headers": {"content-type": "application/x-npy"}},
        ),
        ("POST", "/invert"): (
            f"/invert?model={COND}&labels=1&format=npy",
            {"content": _npy(images), "headers": {"content-type": "application/x-npy"}},
        ),
        ("POST", "/v2/models/x/infer"): _v2_infer(f"{infer}/infer", digits, 2),
        ("POST", "/v2/models/x/versions/x/infer"): _v2_infer(
            f"{infer}/versions/{digits.card.version}/infer", digits, 2
        ),
    }


@pytest.fixture(scope="module")
def routes(app) -> set[tuple[str, str]]:
    return set(served_routes(app.routes))


def test_every_route_is_either_admitted_or_says_why_not(client, routes):  # client: the models loaded
    from service.service import ROUTES

    admitted = set(admitted_requests(ROUTES.state.engine))
    assert not admitted & set(NOT_ADMITTED), sorted(admitted & set(NOT_ADMITTED))
    unclassified = routes - admitted - set(NOT_ADMITTED)
    assert not unclassified, (
        f"routes neither admitted nor excused: {sorted(unclassified)}; a route that runs a model takes "
        "admission (http/admitted.py) and an entry in admitted_requests, any other an entry in NOT_ADMITTED"
    )
    assert admitted <= routes, sorted(admitted - routes)  # a route gone: its entry goes too


def test_with_the_budget_held_every_admitted_route_waits_then_answers_503(client, monkeypatch):
    from service.service import ROUTES

    requests = admitted_requests(ROUTES.state.engine)
    for (method, _), (path, kwargs) in requests.items():  # each one valid: answered with the budget free
        answer = client.request(method, path, **kwargs)
        assert answer.status_code == 200, (method, path, answer.text)

    # A budget of one byte, held: no request fits beside the holder, so each waits, then is refused.
    with budget_held(monkeypatch, budget=1, held=1, wait_s=0.2) as adm:
        answers = {
            (method, route): client.request(method, path, **kwargs)
            for (method, route), (path, kwargs) in requests.items()
        }
    let_in = {k: (a.status_code, a.text[:120]) for k, a in answers.items() if a.status_code != 503}
    assert not let_in, f"answered past a full budget: {let_in}"
    assert all(a.headers.get("retry-after") for a in answers.values())
    assert adm.refused == len(requests) and (adm.in_flight, adm.in_flight_bytes) == (0, 0)
