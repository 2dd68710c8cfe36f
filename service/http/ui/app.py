"""The playground's routes, mounted at /ui by service.py (GANSERVE_UI=false leaves them out):

- `GET /ui/`: the page (static/index.html, app.js, plot.js, style.css: our own files, nothing fetched from
  elsewhere; the Content-Security-Policy header makes the browser refuse anything else).
- `GET /ui/config.json`: what the page adapts to beyond the cards that GET /models lists: which
  request fields this server's API has (a class picker only where SampleRequest takes `labels`),
  the data's modes for the toy datasets' plots, whether a token is required.
- `GET|POST /ui/login`: the token form (auth.py); open, like /livez.

The page computes nothing itself: every sample, walk and score it shows is the answer of the API's
own routes (POST /sample, /interpolate, /score, GET /models), called from the browser with the
same bodies a client sends. So the page exercises exactly what the API serves, through the same
guard, body limit and handlers, and a field added to a request schema needs only its control here.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from service.core.schemas import MAX_N, InterpolateRequest, SampleRequest
from service.http.ui import auth
from service.http.ui.modes import DATA_MODES
from service.settings import get_settings

STATIC = Path(__file__).with_name("static")
# Our own origin only; blob: and data: are the images the page makes from the API's answers.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'; "
    "form-action 'self'"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
MAX_LOGIN_BYTES = 4096


def _static(name: str):
    path = STATIC / name

    async def serve(request: Request) -> Response:
        # Read at each request: a few KB, and an edited file shows without a restart.
        return Response(
            path.read_bytes(),
            media_type=TYPES[path.suffix],
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return serve


def page_config() -> dict:
    settings = get_settings()
    return {
        # Fields other versions of the API may or may not have: the page shows their controls only
        # when the request schema takes them.
        "sample_fields": sorted(SampleRequest.model_fields),
        "interpolate_fields": sorted(InterpolateRequest.model_fields),
        "max_n": MAX_N,
        "data_modes": DATA_MODES,
        "token_required": settings.token_required,
    }


async def config(request: Request) -> Response:
    return JSONResponse(page_config(), headers={"Cache-Control": "no-cache"})


async def login(request: Request) -> Response:
    settings = get_settings()
    if not settings.token_required:
        return RedirectResponse("/ui/", status_code=303)  # nothing to sign in to
    if request.method == "GET":
        return HTMLResponse(auth.login_page())
    body = await request.body()  # the guard has bounded it already
    token = (parse_qs(body[:MAX_LOGIN_BYTES].decode("utf-8", "replace")).get("token") or [""])[0]
    expected = settings.api_token.get_secret_value()
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return HTMLResponse(auth.login_page("Wrong token." if token else "Enter the token."), status_code=401)
    response = RedirectResponse("/ui/", status_code=303)
    response.headers.append(
        "Set-Cookie", auth.set_cookie_header(auth.session_value(expected), secure=request.url.scheme == "https")
    )
    return response


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", _static("index.html"), methods=["GET"]),
            Route("/app.js", _static("app.js"), methods=["GET"]),
            Route("/plot.js", _static("plot.js"), methods=["GET"]),
            Route("/style.css", _static("style.css"), methods=["GET"]),
            Route("/config.json", config, methods=["GET"]),
            Route("/login", login, methods=["GET", "POST"]),
        ]
    )
