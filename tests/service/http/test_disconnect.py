"""The disconnect watch (http/disconnect.py) as ASGI: what it does with the messages a server sends
it, driven here message by message. A real server's departed clients are in
tests/service/runtime/test_cancellation.py; this pins the rules that test cannot see: a watch only
where asked (or on every request of an eager route), the body still read by the route, the flag
that thread work reads, and a cancellation that is not the client's left alone."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio.to_thread
import pytest
from starlette.requests import Request
from starlette.responses import Response

from service.http import disconnect
from service.runtime import cancellation


class Peer:
    """The server's side of one connection: the request's body, then a disconnect when `leave()`."""

    def __init__(self, body: bytes = b"{}"):
        self.messages = [{"type": "http.request", "body": body, "more_body": False}]
        self.gone = asyncio.Event()
        self.sent: list[dict] = []
        self.reads = 0

    async def receive(self) -> dict:
        self.reads += 1
        if self.messages:
            return self.messages.pop(0)
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self.gone.set()

    @property
    def status(self):
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)


def scope(method: str = "POST", body: bytes = b"{}") -> dict:
    headers = [(b"content-length", str(len(body)).encode())] if method == "POST" else []
    return {"type": "http", "method": method, "path": "/x", "headers": headers, "query_string": b""}


def run(app, peer: Peer, method: str = "POST", leave_after_s: float | None = None):
    async def main():
        if leave_after_s is not None:
            asyncio.get_running_loop().call_later(leave_after_s, peer.leave)
        await app(scope(method), peer.receive, peer.send)

    asyncio.run(main())


def test_a_lazy_route_watches_only_when_asked():
    watched = []

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        # Asked for both; only a charge of WATCH_MIN_COST or more is worth a watcher.
        disconnect.watch(request.scope, disconnect.WATCH_MIN_COST if body == b"dear" else disconnect.WATCH_MIN_COST - 1)
        await asyncio.sleep(0.05)
        watched.append(request.scope[disconnect.WATCH_KEY]._watcher is not None)
        return Response(b"ok")

    app = disconnect.cancellable(endpoint, eager=False)
    cheap, dear = Peer(b"cheap"), Peer(b"dear")
    run(app, cheap)
    run(app, dear)
    assert watched == [False, True]
    assert cheap.status == 200 and dear.status == 200
    assert cheap.reads == 1  # its body, nothing after: no watcher read on


def test_a_client_that_leaves_stops_the_threads_work_at_its_next_step():
    steps = []

    def work() -> None:
        for i in range(200):
            cancellation.check()  # a step boundary, as the filter rounds and graph chunks have
            steps.append(i)
            time.sleep(0.01)

    async def endpoint(request: Request) -> Response:
        await request.body()
        await anyio.to_thread.run_sync(work)
        return Response(b"done")

    peer = Peer()
    run(disconnect.cancellable(endpoint), peer, leave_after_s=0.2)
    assert peer.sent == []  # nobody to answer
    assert 5 <= len(steps) < 60, len(steps)  # stopped within a few steps of the 0.2 s mark, not at 200


def test_a_request_waiting_on_the_loop_is_cancelled_at_once():
    reached = threading.Event()

    async def endpoint(request: Request) -> Response:
        await request.body()
        await asyncio.sleep(30)  # an admission wait, a batcher's queue
        reached.set()
        return Response(b"late")

    peer = Peer()
    t0 = time.monotonic()
    run(disconnect.cancellable(endpoint), peer, leave_after_s=0.1)
    assert time.monotonic() - t0 < 2 and not reached.is_set() and peer.sent == []


def test_a_bodyless_get_is_watched_from_the_start():
    async def endpoint(request: Request) -> Response:
        await asyncio.sleep(30)
        return Response(b"late")

    peer = Peer(b"")
    t0 = time.monotonic()
    run(disconnect.cancellable(endpoint), peer, method="GET", leave_after_s=0.1)
    assert time.monotonic() - t0 < 2 and peer.sent == []


def test_a_disconnect_after_the_answer_changes_nothing():
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(b"ok")

    peer = Peer()
    peer.leave()  # the server reports disconnect once the answer is sent, to whoever asks
    run(disconnect.cancellable(endpoint), peer)
    assert peer.status == 200 and peer.sent[-1]["body"] == b"ok"


def test_a_cancellation_that_is_not_the_clients_is_left_to_its_owner():
    async def endpoint(request: Request) -> Response:
        await request.body()
        await asyncio.sleep(30)
        return Response(b"late")

    async def main():
        peer = Peer()
        async with asyncio.timeout(0.1):  # what the request timeout does (http/timeout.py)
            await disconnect.cancellable(endpoint)(scope(), peer.receive, peer.send)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
