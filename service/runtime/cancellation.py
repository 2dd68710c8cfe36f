"""A request's cancellation, seen from the threads that do its work.

When a client goes away, http/disconnect.py cancels the request's task: whatever it awaited (its
admission wait, a batcher's queue, a streamed block) stops at once. Work already handed to a
thread cannot be interrupted that way, so the request also carries a flag in a context variable
(anyio.to_thread copies the context into its threads) and the long loops look at it between
steps: a filter's draw rounds (core/sampling.py), a large n's chunks through a graph
(runtime/batching.py), the refine search's rounds (core/inversion.py). A step already running
ends first: that is the bound on what a departed client still costs.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Optional


class Flag:
    """Set once, read from any thread: a plain attribute (a threading.Event cost more to make than
    a small request's whole cancellation watch)."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def set(self) -> None:
        self.cancelled = True


_flag: ContextVar[Optional[Flag]] = ContextVar("ganserve_cancelled", default=None)


class ClientGone(Exception):
    """Raised in a worker thread at a check point once the request's client has gone: nobody
    waits for the rest of this work. Never answered (there is no one to answer)."""


def enter(flag: Flag) -> Token:
    """Make `flag` the current request's (a plain set, not a context manager: it runs on every watched request)."""
    return _flag.set(flag)


def leave(token: Token) -> None:
    _flag.reset(token)


def check() -> None:
    """Raise ClientGone if the current request's client has gone; nothing outside a request."""
    flag = _flag.get()
    if flag is not None and flag.cancelled:
        raise ClientGone("the client disconnected; the rest of its work was dropped")
