"""An ASGI middleware in front of every route: bearer token, body size limit, and error lines that
name the field.

- Token: when GANSERVE_API_TOKEN is set, API routes need `Authorization: Bearer <token>`;
  health (BentoML's and the Open Inference Protocol's), metrics and the API docs stay open (probes
  and scrapers carry no secrets). The playground's session cookie (ui/auth.py, set by its login
  form) counts as the token; a browser without either that asks for a page under /ui is sent to
  the form.
- Body limit: a body over GANSERVE_MAX_BODY_BYTES is refused with 413 before any parsing, whether
  it announces its length or streams in chunks.
- BentoML answers validation failures with 400 and `"error": "1 validation error for ..."`; the
  field is only in `detail`. Those 400s get an `error` line naming the field, like ours.
"""

from __future__ import annotations

import hmac
import json

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.errors import error_response
from service.http.ui import auth as ui_auth

# The Open Inference Protocol's health routes are probes too (service/v2); the rest of /v2 is guarded.
OPEN_PATHS = {
    "/livez",
    "/readyz",
    "/healthz",
    "/metrics",
    "/",
    "/docs.json",
    "/schema.json",
    "/v2/health/live",
    "/v2/health/ready",
}
OPEN_PREFIXES = ("/static_content/", "/assets/")
BODY_METHODS = {"POST", "PUT", "PATCH"}


class GuardMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, api_token: str | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.expected = f"Bearer {api_token}".encode() if api_token else None
        self.session = ui_auth.session_value(api_token) if api_token else None

    def _is_open(self, path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or path in ui_auth.OPEN_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self.expected is not None and not self._is_open(scope["path"]):
            given = headers.get("authorization", "").encode()
            # Both compared in constant time: no token oracle.
            if not hmac.compare_digest(given, self.expected) and not ui_auth.valid(
                headers.get("cookie", ""), self.session
            ):
                if scope["method"] == "GET" and (scope["path"] == "/ui" or scope["path"].startswith("/ui/")):
                    return await RedirectResponse(ui_auth.LOGIN_PATH, status_code=303)(scope, receive, send)
                problem = "wrong bearer token" if given else "missing: send Authorization: Bearer <token>"
                response = error_response(401, [("authorization", problem)], headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        if scope["method"] in BODY_METHODS:
            body = await self._read_body(headers, receive)
            if body is None:
                problem = f"the request body is over the limit of {self.max_body_bytes} bytes"
                return await error_response(413, [("body", problem)])(scope, receive, send)
            receive = replay_body(body, receive)
        await self.app(scope, receive, _NamingValidationErrors(send))

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes | None:
        """The whole body, or None when it is over the limit (read no further than that)."""
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def replay_body(body: bytes, receive: Receive | None = None) -> Receive:
    """An ASGI `receive` that gives an already-read body, whole, as one message; then `receive`'s
    messages (the server's: it reports the disconnect when the client goes), or, without one, a
    disconnect at once: nothing more will come. The one copy of this: the guard replays the body
    it measured, the dataset routes the body they checked (dataset_routes.py)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replay


class _NamingValidationErrors:
    """Wraps `send`: a JSON 400 with a pydantic `detail` list gets `error` = "<field>: <problem>"."""

    def __init__(self, send: Send):
        self.send = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 400:
            self.start = message  # hold it: the body decides the new content-length
            return
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = _rewrite(b"".join(self.chunks))
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


def _rewrite(body: bytes) -> bytes:
    try:
        data = json.loads(body)
        problems = data["detail"]
        first = problems[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
    except (ValueError, KeyError, IndexError, TypeError):
        return body  # not a pydantic validation answer: leave it alone
    data["error"] = f"{where}: {first['msg']}"
    data["detail"] = [{k: v for k, v in p.items() if k in ("loc", "msg", "type")} for p in problems]
    return json.dumps(data).encode()
