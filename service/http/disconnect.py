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
only reads what comes after it (nothing but the disconnect, for HTTP/1.1). A watcher is a task
waiting on receive(): about 50 us of CPU a request, a tenth of an n = 1 request's, and under load
every request lives long enough to need one if it is started by a timer
(docs/PERFORMANCE.md#finding-cancel-watch). So /sample watches only the requests that cost enough
to be worth stopping (`watch`, from the route, by the request's admission charge), and so does
/v2 infer, which serves the same one-sample requests; the other routes, rarer and dearer, watch
every request.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from starlette.routing import request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.runtime import cancellation

# Requests charged at least this much by admission (about 30 MNIST digits as npy, fewer through a
# filter) have their connection watched, and their work stopped if the client leaves, where the
# route decides by cost (`watch`: /sample, /v2 infer); smaller ones finish in about a millisecond
# of CPU once they run, less than a watch costs.
WATCH_MIN_COST = 256 * 1024
WATCH_KEY = "ganserve.disconnect"  # the request's _Receiver in its ASGI scope (`watch` finds it)


class _Receiver:
    """The route's `receive`: its own body messages as they come; afterwards, what the watcher saw.
    The watcher starts once the body has been read and the watch was asked for, or at once when
    the route itself asks for what comes after the body (a streamed answer listening for the
    disconnect)."""

    __slots__ = ("_receive", "_on_gone", "_after", "_watcher", "body_read", "wanted")

    def __init__(self, receive: Receive, bodyless: bool, on_gone, wanted: bool):
        self._receive, self._on_gone = receive, on_gone
        self._after: Optional[asyncio.Queue] = None
        self._watcher: Optional[asyncio.Task] = None
        self.body_read, self.wanted = bodyless, wanted
        if wanted and bodyless:
            self._start()

    def want(self) -> None:
        self.wanted = True
        if self.body_read:
            self._start()

    def _start(self) -> None:
        if self._watcher is None:
            self._after = asyncio.Queue()
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
                if self.wanted:
                    self._start()
            return message
        self._start()  # the route waits for what comes after the body: only the watcher reads it
        message = await self._after.get()
        if message["type"] == "http.disconnect":
            self._after.put_nowait(message)  # every later call is told too
        return message

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


def watch(scope: Scope, cost: int) -> None:
    """Watch this request's connection from now on (a route wrapped with `cancellable(..., eager=False)`)
    if its admission charge `cost` makes it worth stopping (WATCH_MIN_COST)."""
    receiver = scope.get(WATCH_KEY)
    if receiver is not None and cost >= WATCH_MIN_COST:
        receiver.want()


def _bodyless(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return False
    return True


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp, eager: bool = True):
        self.app, self.eager = app, eager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        task = asyncio.current_task()
        flag = cancellation.Flag()
        answered = False

        def on_gone() -> None:
            if not answered and not flag.cancelled:  # after the answer, uvicorn says disconnect to everyone
                flag.set()
                task.cancel()

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        token = cancellation.enter(flag)
        receiver = scope[WATCH_KEY] = _Receiver(receive, _bodyless(scope), on_gone, self.eager)
        try:
            await self.app(scope, receiver, tracked_send)
        except (asyncio.CancelledError, cancellation.ClientGone):
            if not flag.cancelled:  # cancelled by someone else (the request timeout, a shutdown)
                raise
            if task.cancelling():
                task.uncancel()
            _count_cancelled()
        finally:
            receiver.close()
            cancellation.leave(token)


def cancellable(endpoint, eager: bool = True) -> ASGIApp:
    """A route endpoint (async def f(request) -> Response) whose work stops when its client leaves:
    every request's (eager), or those the endpoint asks `watch` for."""
    return CancelOnDisconnect(request_response(endpoint), eager)


def _count_cancelled() -> None:
    from service.runtime import metrics

    metrics.count_cancelled()
