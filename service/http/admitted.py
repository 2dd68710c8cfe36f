"""Admission around a route's work: `admitted(cost, work)` waits until admission control lets `cost`
bytes in (runtime/admission.py; 503 with Retry-After when it does not) and answers a response that
gives the budget back only once it has been sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from service.runtime import admission, tracing


class _Releasing:
    """An answer that gives its admission back once it has been sent (or has failed to be): the
    encoded body is held until then, so it counts against the budget until then. A streamed json
    answer (handlers.respond) holds its samples and makes its text while it is sent, so its
    budget is held until the last block has gone, or the client has left (Starlette then stops
    the stream at the next block)."""

    def __init__(self, response: Response, release: Callable[[], None]):
        self.response, self.release = response, release

    async def __call__(self, scope, receive, send) -> None:
        try:
            with tracing.phase("send"):
                await self.response(scope, receive, send)
        finally:
            self.release()


async def admitted(cost: int, work: Callable[[], Awaitable[Response]]) -> Response:
    """Run `work` once admission control lets `cost` bytes in (admission.py; 503 when it does not)."""
    with tracing.phase("admission wait", **{"ganserve.charge_bytes": cost}):
        release = await admission.get().enter(cost)
    try:
        response = await work()
    except BaseException:
        release()
        raise
    return _Releasing(response, release)
