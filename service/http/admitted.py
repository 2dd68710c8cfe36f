"""Admission around a route's work: `admitted(cost, work)` waits until admission control lets `cost`
bytes in (runtime/admission.py; 503 with Retry-After when it does not) and answers a response that
gives the budget back only once it has been sent; `admitted_raising` lets the work raise its charge
once it knows more."""

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


class Charge:
    """A request's hold on the budget, which its route may raise once it knows more than at the
    start (/invert: the images' count and the search asked for are known only once the body is
    decoded). Raising gives the hold back before waiting for the larger one: a request that held
    bytes while waiting for more would stall, with others doing the same, until their waits ran
    out. Meanwhile it holds only its parsed body, as every waiting request does (admission.py)."""

    def __init__(self, cost: int, release: Callable[[], None]):
        self.cost, self._release = cost, release

    async def raise_by(self, extra: int) -> None:
        """Hold `extra` bytes more from now on (nothing changes for 0); Overloaded, holding
        nothing, when the budget stays full for the wait."""
        if extra <= 0:
            return
        cost = self.cost + extra
        self.release()
        with tracing.phase("admission wait", **{"ganserve.charge_bytes": cost}):
            self._release = await admission.get().enter(cost)
        self.cost = cost

    def release(self) -> None:
        release, self._release = self._release, _nothing
        release()


def _nothing() -> None:
    pass


async def admitted(cost: int, work: Callable[[], Awaitable[Response]]) -> Response:
    """Run `work` once admission control lets `cost` bytes in (admission.py; 503 when it does not)."""
    return await admitted_raising(cost, lambda _: work())


async def admitted_raising(cost: int, work: Callable[[Charge], Awaitable[Response]]) -> Response:
    """`admitted`, with `work` handed its Charge to raise once it knows its cost."""
    with tracing.phase("admission wait", **{"ganserve.charge_bytes": cost}):
        charge = Charge(cost, await admission.get().enter(cost))
    try:
        response = await work(charge)
    except BaseException:
        charge.release()
        raise
    return _Releasing(response, charge.release)
