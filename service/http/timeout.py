"""The request timeout (`traffic.timeout`): 504 when a request has not begun its answer in time.

BentoML 1.4.40's own TimeoutMiddleware schedules a timer per request with `loop.call_later` and
never cancels it. Each timer keeps what it captured alive until it fires: its future and a copy of
the request's context, which holds the request's tracing span. At a 120 s timeout that is every
request of the last two minutes: the worker grew under load, and every full garbage collection
walked them (docs/PERFORMANCE.md#finding-request-timeout). RequestTimeout does the same job
with `asyncio.timeout`, whose timer goes with the answer. `install()` puts it in BentoML's place;
BentoML builds its middleware list after importing the service, so installing at import suffices.
"""

from __future__ import annotations

import asyncio
import logging

import bentoml
from bentoml._internal.server.http import traffic
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.errors import error_response

log = logging.getLogger("ganserve.timeout")
# The version whose TimeoutMiddleware this replaces (same constructor, same behaviour, no leak).
BENTOML_VERSION = "1.4.40"
BENTOMLS_OWN = traffic.TimeoutMiddleware  # kept for the tests that show what it leaves behind


class RequestTimeout:
    """Cancels a request that has not started its answer within `timeout` seconds and answers 504
    instead. Once the answer has begun (a long body may stream for longer), no timeout applies:
    BentoML's rule. Work already handed to a thread cannot be cancelled and runs to its end."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = asyncio.timeout(self.timeout)
        started = False

        async def send_disarmed(message: Message) -> None:
            nonlocal started
            if not started:
                started = True
                deadline.reschedule(None)  # the answer has begun: too late for a 504
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, send_disarmed)
        except TimeoutError:
            if started or not deadline.expired():  # not ours: a TimeoutError from the app itself
                raise
            problem = f"no answer within {self.timeout:g} s; the request was cancelled"
            await error_response(504, [("server", problem)])(scope, receive, send)


def install() -> bool:
    """Use RequestTimeout wherever BentoML adds its TimeoutMiddleware; False (and a warning) on a
    BentoML version other than the one it was written against, whose middleware may differ."""
    if traffic.TimeoutMiddleware is RequestTimeout:
        return True
    if bentoml.__version__ != BENTOML_VERSION:
        log.warning(
            "BentoML %s: keeping its own TimeoutMiddleware (RequestTimeout replaces the one of %s)",
            bentoml.__version__,
            BENTOML_VERSION,
        )
        return False
    traffic.TimeoutMiddleware = RequestTimeout
    return True
