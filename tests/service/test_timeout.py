"""RequestTimeout (service/timeout.py): 504 for a request that has not begun its answer in time,
nothing for one that has, and no timer left holding a finished request's objects (BentoML
1.4.40's own middleware keeps them for the whole timeout)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref

import pytest

from service.timeout import BENTOMLS_OWN, RequestTimeout

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


def test_finished_requests_are_not_kept_alive_by_timers_unlike_bentomls_middleware():
    # asyncio drops cancelled timers once they are over half of its 100+ scheduled ones: a bound,
    # not a backlog. BentoML's timers are never cancelled: every request stays for the timeout.
    assert alive_after_answers(RequestTimeout) <= 110
    assert alive_after_answers(BENTOMLS_OWN) == 400  # the leak RequestTimeout replaces (BentoML 1.4.40)


def test_the_service_uses_it_in_bentomls_place(app):
    from bentoml._internal.server.http import traffic

    assert traffic.TimeoutMiddleware is RequestTimeout
    stack = [m.cls for m in app.user_middleware]
    assert RequestTimeout in stack and BENTOMLS_OWN not in stack
