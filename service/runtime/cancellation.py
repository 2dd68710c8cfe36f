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

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Optional

_flag: ContextVar[Optional[threading.Event]] = ContextVar("ganserve_cancelled", default=None)


class ClientGone(Exception):
    """Raised in a worker thread at a check point once the request's client has gone: nobody
    waits for the rest of this work. Never answered (there is no one to answer)."""


@contextlib.contextmanager
def scope() -> Iterator[threading.Event]:
    """A fresh flag for the code run inside (set it to cancel that code's thread work)."""
    flag = threading.Event()
    token = _flag.set(flag)
    try:
        yield flag
    finally:
        _flag.reset(token)


def check() -> None:
    """Raise ClientGone if the current request's client has gone; nothing outside a request."""
    flag = _flag.get()
    if flag is not None and flag.is_set():
        raise ClientGone("the client disconnected; the rest of its work was dropped")
