"""dispatch.RoutesFirst: our mounted routes answer their own paths and methods; everything else
(BentoML's probes, its API for other methods, unknown paths) goes on to the app behind."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service.http.dispatch import RoutesFirst


def _answer(text: str):
    async def endpoint(request):
        return PlainTextResponse(text)

    return endpoint


def _client(our_paths: list[str]):
    from starlette.testclient import TestClient  # imported here: its httpx notice is filtered per test (conftest.py)

    ours = Starlette(routes=[Route(p, _answer("ours"), methods=["POST"]) for p in our_paths])
    behind = Starlette(routes=[Route("/{path:path}", _answer("behind"), methods=["GET", "POST"])])
    return TestClient(RoutesFirst(behind, ours))


@pytest.mark.parametrize(
    "our_paths", [["/sample", "/score"], ["/sample", "/models/{name}"]], ids=["fixed paths", "a path with a parameter"]
)
def test_our_paths_and_methods_reach_our_routes_and_the_rest_goes_behind(our_paths):
    client = _client(our_paths)
    assert client.post("/sample").text == "ours"
    assert client.get("/sample").text == "behind"  # our route takes POST only
    assert client.get("/livez").text == client.post("/samples").text == "behind"
    if "/models/{name}" in our_paths:
        assert client.post("/models/mnist").text == "ours"
        assert client.post("/models").text == "behind"
