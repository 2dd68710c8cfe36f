"""Stop a request's work when its client goes away (issue 32).

uvicorn tells an app that its client left only through `receive()`, and only to an app that asks;
a route busy drawing samples never asks, so a departed client's work ran to its end and held its
admission charge until then. `cancellable(endpoint)` wraps one route: once the request's body has
been read (at once for a request without one), a watcher task waits on `receive()`; when it says
`http.disconnect` before the answer has been sent, the request's task is cancelled and its
cancellation flag set (runtime/cancellation.py). What that stops:

- an admission wait (admission.py leaves the queue), a batcher's queue (a cancelled caller is
  dropped before its run), a streamed answer's next block: at once, by the task's cancellation;
- work in a worker thread: at its next check point (a filter's draw round, a graph chunk of a
  large n, a refine round), by the flag; the await on that thread returns then, and the admission
  charge comes back with it.

The body is still read by the route itself, so uvicorn's flow control is unchanged; the watcher
only reads what comes after it (nothing but the disconnect, for HTTP/1.1).
"""

from __future__ import annotations

import asyncio
from typing import Optional

from starlette.routing import request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.runtime import cancellation

DISCONNECT: Message = {"type": "http.disconnect"}


class _Receiver:
    """The route's `receive`: its own body messages as they come; afterwards, what the watcher saw."""

    def __init__(self, receive: Receive, bodyless: bool, on_gone):
        self._receive, self._on_gone = receive, on_gone
        self._after: asyncio.Queue = asyncio.Queue()
        self._watcher: Optional[asyncio.Task] = None
        self.body_read = bodyless
        if bodyless:
            self._start()

    def _start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            self._after.put_nowait(message)  # a bodyless request's empty body, or the disconnect
            if message["type"] == "http.disconnect":
                self._on_gone()
                return

    async def __call__(self) -> Message:
        if not self.body_read:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._on_gone()
            elif not message.get("more_body", False):
                self.body_read = True
                self._start()
            return message
        message = await self._after.get()
        if message["type"] == "http.disconnect":
            self._after.put_nowait(message)  # every later call is told too
        return message

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


def _bodyless(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or ())
    return headers.get(b"content-length", b"0") == b"0" and b"transfer-encoding" not in headers


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        task = asyncio.current_task()
        answered = gone = False

        def on_gone() -> None:
            nonlocal gone
            if not answered and not gone:  # after the answer, uvicorn says disconnect to everyone
                gone = True
                flag.set()
                task.cancel()

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        with cancellation.scope() as flag:
            receiver = _Receiver(receive, _bodyless(scope), on_gone)
            try:
                await self.app(scope, receiver, tracked_send)
            except (asyncio.CancelledError, cancellation.ClientGone):
                if not gone:  # cancelled by someone else (the request timeout, a shutdown)
                    raise
                if task.cancelling():
                    task.uncancel()
                _count_cancelled()
            finally:
                receiver.close()


def cancellable(endpoint) -> ASGIApp:
    """A route endpoint (async def f(request) -> Response) whose work stops when its client leaves."""
    return CancelOnDisconnect(request_response(endpoint))


def _count_cancelled() -> None:
    from service.runtime import metrics

    metrics.count_cancelled()
