"""RequestTimeout (service/http/timeout.py): 504 for a request that has not begun its answer in time,
nothing for one that has, and no timer left holding a finished request's objects (BentoML
1.4.40's own middleware keeps them for the whole timeout).

The leak check's control is a middleware written here with BentoML 1.4.40's pattern (a timer per
request, never cancelled), not BentoML's own class: that BentoML still leaks is not ours to
assert, and a BentoML that fixed it must not fail this suite. Which middleware the service uses
is checked against what install() promises for the BentoML installed. The 504 on a real server
is in test_server_e2e.py."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import logging
import weakref

import bentoml
import pytest
from bentoml._internal.server.http import traffic

from service.http import timeout
from service.http.timeout import BENTOML_VERSION, BENTOMLS_OWN, RequestTimeout

REQUEST_STATE = contextvars.ContextVar("request_state")


class State:
    """Stands for what a request leaves in its context (its tracing span, in the server)."""


def call(middleware, app, timeout: float = 0.2) -> list[dict]:
    """One GET through middleware(app, timeout) on a fresh loop; the messages sent back."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    asyncio.run(middleware(app, timeout=timeout)(scope, receive, send))
    return sent


def answer_after(delay_before: float, delay_during: float = 0.0, cancelled: list | None = None):
    async def app(scope, receive, send):
        try:
            await asyncio.sleep(delay_before)
        except asyncio.CancelledError:
            if cancelled is not None:
                cancelled.append(True)
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(delay_during)
        await send({"type": "http.response.body", "body": b"done"})

    return app


def test_a_request_with_no_answer_in_time_is_cancelled_and_answered_504_naming_the_limit():
    cancelled = []
    sent = call(RequestTimeout, answer_after(5.0, cancelled=cancelled), timeout=0.1)
    assert sent[0]["status"] == 504 and cancelled == [True]
    body = json.loads(sent[1]["body"])
    assert body["error"] == "server: no answer within 0.1 s; the request was cancelled"


def test_an_answer_that_began_in_time_may_stream_past_the_limit():
    sent = call(RequestTimeout, answer_after(0.0, delay_during=0.3), timeout=0.1)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"done"


def test_a_timeout_error_of_the_app_itself_is_not_taken_for_the_limit():
    async def app(scope, receive, send):
        raise TimeoutError("an upstream call of the app timed out")

    with pytest.raises(TimeoutError, match="upstream"):
        call(RequestTimeout, app, timeout=5.0)


def alive_after_answers(middleware, requests: int = 400) -> int:
    """How many of `requests` finished requests still have their context object alive. Each
    request's object is set in its context before the middleware runs, as the tracing middleware
    outside it sets the request's span (timeout 60 s: no timer fires during the test)."""
    refs = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    async def one_request():
        state = State()
        refs.append(weakref.ref(state))
        REQUEST_STATE.set(state)
        del state
        await middleware(app, timeout=60)({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)

    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(requests):  # one task per request, as the server runs them
            await loop.create_task(one_request())
        for _ in range(3):  # let the loop drop its last handles
            await asyncio.sleep(0)
        gc.collect()
        return sum(ref() is not None for ref in refs)  # counted while the loop and its timers live

    return asyncio.run(main())


class TimerPerRequest:
    """BentoML 1.4.40's TimeoutMiddleware, reduced to the pattern that leaks: a timer scheduled per
    request with `loop.call_later` and never cancelled, holding the request's future (and, through
    the handle, its context) until it fires."""

    def __init__(self, app, timeout: float) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope, receive, send) -> None:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        loop.call_later(self.timeout, lambda: waiter.done() or waiter.set_exception(TimeoutError()))

        async def send_and_settle(message) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        await self.app(scope, receive, send_and_settle)


def test_finished_requests_are_not_kept_alive_by_timers():
    # asyncio drops cancelled timers once they are over half of its 100+ scheduled ones: a bound,
    # not a backlog. Timers never cancelled keep every request for the timeout: the control shows
    # the count sees such a leak.
    assert alive_after_answers(RequestTimeout) <= 110
    assert alive_after_answers(TimerPerRequest) == 400


@pytest.mark.parametrize("version, replaced", [(BENTOML_VERSION, True), ("99.0.0", False)])
def test_install_replaces_bentomls_middleware_only_on_the_version_it_was_written_for(
    monkeypatch, caplog, version, replaced
):
    monkeypatch.setattr(traffic, "TimeoutMiddleware", BENTOMLS_OWN)
    monkeypatch.setattr(bentoml, "__version__", version)
    with caplog.at_level(logging.WARNING, logger="ganserve.timeout"):
        assert timeout.install() is replaced
    assert traffic.TimeoutMiddleware is (RequestTimeout if replaced else BENTOMLS_OWN)
    assert ("keeping its own TimeoutMiddleware" in caplog.text) is not replaced


def test_the_service_uses_what_install_promises_for_this_bentoml(app):
    expected = RequestTimeout if bentoml.__version__ == BENTOML_VERSION else BENTOMLS_OWN
    assert traffic.TimeoutMiddleware is expected
    stack = [m.cls for m in app.user_middleware]
    assert expected in stack and ({RequestTimeout, BENTOMLS_OWN} - {expected}).isdisjoint(stack)
