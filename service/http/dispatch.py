"""Hands requests for the mounted Starlette app's routes (routes.py) straight to it.

BentoML mounts an ASGI app behind its own routes, so a path that is both a BentoML API and a
route of ours (POST /sample: the API publishes the schema, the route serves it faster) would reach
the API. Added as the innermost service middleware, this sends those requests to our app first:
everything outside it (BentoML's metrics, tracing, access log and timeout, then GuardMiddleware's
token and body limit) still applies to them. What sits inside it does not: BentoML's CORS
middleware (off unless configured in BentoML's own config; ganserve configures none) and its
request context (`bentoml.context`, which our routes do not use).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send


class RoutesFirst:
    def __init__(self, app: ASGIApp, routes: Starlette):
        self.app = app
        self.routes = routes
        # Every request passes here (/livez and /metrics too): a set lookup and a prefix test first,
        # so that only our own paths pay for Starlette's full match (path and method). A path with
        # parameters ("/v2/models/{name}") contributes its fixed part before the first "{".
        paths = [r.path for r in routes.routes]
        self.paths = frozenset(p for p in paths if "{" not in p)
        self.prefixes = tuple(sorted({p[: p.index("{")] for p in paths if "{" in p}))

    def _ours(self, path: str) -> bool:
        return path in self.paths or (bool(self.prefixes) and path.startswith(self.prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self._ours(scope["path"])
            and any(r.matches(scope)[0] == Match.FULL for r in self.routes.routes)
        ):
            # The dataset task's routes (datasets/routes.py) check a submit and then hand it on to
            # BentoML, and reach BentoML's task store on cancel: they find both here.
            scope["ganserve.next_app"] = self.app
            scope["ganserve.bentoml_app"] = scope.get("app")
            return await self.routes(scope, receive, send)
        await self.app(scope, receive, send)
