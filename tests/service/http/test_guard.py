"""The bearer token guards every route the service serves, by construction: the routes are read
from the ASGI app itself (BentoML's APIs, its task routes, the mounted app's routes, and whatever
is added later, such as /v2/... or /ui), not from a list kept here, so a new route is checked the
day it appears. Only the documented open routes (health, metrics, the API docs and the docs UI's
files; service/http/middleware.py's docstring, docs/API.md) answer without the token.

The open list is stated here, not imported from service/http/middleware.py: a route opened there by
mistake (say, /generate_dataset, which writes files on the server) must fail this test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.routing import Mount, Route

from tests.service.support import TOKEN

# /v2/health/*: the Open Inference Protocol's liveness and readiness, open like /livez (docs/API.md)
DOCUMENTED_OPEN_PATHS = {
    "/livez",
    "/readyz",
    "/healthz",
    "/metrics",
    "/",
    "/docs.json",
    "/schema.json",
    "/v2/health/live",
    "/v2/health/ready",
    "/ui/login",
}  # the playground's sign-in form: its POST checks the token itself
DOCUMENTED_OPEN_PREFIXES = ("/static_content/",)  # the docs UI's files (BentoML's Swagger page)
# What the enumeration must at least find: were it to come back short, the check would be hollow.
KNOWN_GUARDED = {
    ("POST", "/sample"),
    ("POST", "/interpolate"),
    ("POST", "/score"),
    ("GET", "/models"),
    ("POST", "/generate_dataset/submit"),
    ("GET", "/generate_dataset/status"),
    ("GET", "/generate_dataset/get"),
    ("POST", "/generate_dataset/retry"),
    ("PUT", "/generate_dataset/cancel"),
}


def served_routes(routes, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, concrete path) for every route under `routes`, mounted apps walked into; a path
    parameter is filled with `x`, a mount that lists no routes (static files) probed below it."""
    for route in routes:
        if isinstance(route, Route):
            path = prefix + route.path
            for part in path.split("/"):
                if part.startswith("{"):
                    path = path.replace(part, "x", 1)
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield method, path
        elif isinstance(route, Mount):  # BentoML's PassiveMount of our app, its static files
            inner = route.routes
            if inner:
                yield from served_routes(inner, prefix + route.path)
            else:
                yield "GET", prefix + route.path + "/probe"
        else:
            pytest.fail(f"a route of a kind this test cannot enumerate: {route!r}; teach served_routes about it")


def refused(method: str, path: str, response) -> bool:
    """A 401 asking for a bearer token; for a page of the playground, a redirect to its sign-in form."""
    if method == "GET" and (path == "/ui" or path.startswith("/ui/")):
        return response.status_code == 303 and response.headers.get("location") == "/ui/login"
    return response.status_code == 401 and response.headers.get("www-authenticate") == "Bearer"


def documented_open(path: str) -> bool:
    return path in DOCUMENTED_OPEN_PATHS or path.startswith(DOCUMENTED_OPEN_PREFIXES)


@pytest.fixture(scope="module")
def routes(app) -> set[tuple[str, str]]:
    found = set(served_routes(app.routes))
    assert KNOWN_GUARDED <= found, sorted(KNOWN_GUARDED - found)
    return found


def test_every_route_but_the_documented_open_ones_needs_the_token(client, routes):
    guarded = sorted(r for r in routes if not documented_open(r[1]))
    assert len(guarded) >= len(KNOWN_GUARDED)
    let_through = []
    for method, path in guarded:
        for authorization in ("", "Bearer wrong", f"Bearer {TOKEN}x"):
            r = client.request(method, path, headers={"Authorization": authorization}, follow_redirects=False)
            if not refused(method, path, r):
                let_through.append((method, path, authorization, r.status_code))
    assert not let_through, f"answered without the right token: {let_through}"


def test_the_documented_open_routes_answer_without_the_token(client, routes):
    opened = sorted(r for r in routes if documented_open(r[1]))
    assert {p for _, p in opened} >= {"/livez", "/readyz", "/metrics", "/docs.json"}
    for method, path in opened:
        if (method, path) == ("POST", "/ui/login"):  # reached (the form answers), but a sign-in needs the token
            try:
                r = client.post(path, data={"token": TOKEN}, headers={"Authorization": ""}, follow_redirects=False)
                assert r.status_code == 303 and "set-cookie" in r.headers, r.status_code
            finally:
                client.cookies.clear()  # the session's client must not stay signed in for other tests
            continue
        assert client.request(method, path, headers={"Authorization": ""}).status_code != 401, (method, path)


def test_a_path_no_route_serves_is_refused_401_not_404_without_the_token(client):
    # No route oracle for callers without the token; with it, the router's own 404.
    assert client.get("/no/such/route", headers={"Authorization": ""}).status_code == 401
    assert client.get("/no/such/route").status_code == 404


def test_a_route_added_later_is_enumerated_and_guarded_with_no_change_here(app, client):
    """As /v2/... and /ui were: a route added to the mounted app after start-up is found by the
    enumeration and refused without the token."""
    from starlette.responses import JSONResponse

    from service.service import ROUTES

    async def infer(request):
        return JSONResponse({"served": request.path_params["name"]})

    added = Route("/later/models/{name}/infer", infer, methods=["POST"])
    ROUTES.router.routes.append(added)
    try:
        found = set(served_routes(app.routes))
        assert ("POST", "/later/models/x/infer") in found
        assert client.post("/later/models/x/infer", headers={"Authorization": ""}).status_code == 401
        assert client.post("/later/models/x/infer").json() == {"served": "x"}  # it is served, with the token
    finally:
        ROUTES.router.routes.remove(added)
