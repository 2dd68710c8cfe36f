"""The service's mounted routes (service.service.ROUTES) driven as a server drives them, one POST
at a time, with every message they send kept: what a test needs to watch a streamed answer block
by block (and the admission held meanwhile), or to play a client that leaves mid-answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Optional

Hook = Callable[[dict, list[dict]], None]


def post_to_routes(path: str, body: dict, on_send: Optional[Hook] = None) -> list[dict]:
    """POST `body` as JSON to `path` on the routes; returns every message sent. `on_send(message,
    messages so far)` runs on each, and may raise OSError to play a client that went away (the
    run then ends there, as a server's would)."""
    from service.service import ROUTES  # imported once the app fixture has set the test settings

    payload, messages, sent = json.dumps(body).encode(), [], False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the client stays until it "leaves" in on_send

    async def send(message):
        messages.append(message)
        if on_send is not None:
            on_send(message, messages)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    try:
        asyncio.run(ROUTES(scope, receive, send))
    except OSError:
        pass
    return messages
