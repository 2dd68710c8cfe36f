"""Micro-batchers: concurrent small requests to one graph share one run of it.

Two front doors to the same idea, no timer in either: an idle server adds no latency, while
callers that arrive during a run are served together by the next one (BentoML's adaptive batching
does the same for one-argument APIs; ours have many arguments, so the engine batches below the API).

- `MicroBatcher`, for callers in threads (large requests, the dataset job, the CLI): leader/
  follower, each caller queues its rows and takes the run lock; whoever holds it runs every row
  queued so far as one batch and hands each caller its part.
- `AsyncMicroBatcher`, for callers on the event loop (small POST /sample requests): callers await
  a future, one drain task runs the queue in a worker thread. One thread hop per run instead of one
  per request: at n = 1 the hop cost more than the graph run (docs/PERFORMANCE.md#finding-event-loop-route). Under load
  only, it gathers: after a run that served several callers, the next run waits up to `gather_s`
  (GANSERVE_BATCH_GATHER_MS) for twice as many. A run of the paper's G costs about the same for 1
  row as for 4 (its weights are read once per run), so runs of more rows free CPU for the loop:
  under load, more requests/s with lower latency, and nothing changes for a lone client, whose
  runs serve one caller each (docs/PERFORMANCE.md#finding-batch-gather).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from service.runtime import cancellation, tracing


@dataclass(eq=False)
class _Ran:
    """When the run that served a caller began and ended, and its size: the caller's tracing
    spans (tracing.py) are recorded from these after the fact."""

    started: int = 0
    ended: int = 0
    run_rows: int = 0
    run_requests: int = 0

    def ran(self, started: int, rows: int, requests: int) -> None:
        self.started, self.ended, self.run_rows, self.run_requests = started, tracing.now(), rows, requests

    def traced(self, queued: int) -> None:
        started = self.started or queued  # 0: the run failed before it could say
        tracing.record("batcher wait", queued, started)
        tracing.record(
            "graph run", started, self.ended or tracing.now(), rows=self.run_rows, requests=self.run_requests
        )


def _ran_together(group: list, started: int) -> None:
    if not started:  # not traced
        return
    rows = sum(len(item.rows) for item in group)
    for item in group:
        item.ran(started, rows, len(group))


@dataclass(eq=False)
class _Pending(_Ran):
    rows: np.ndarray = None
    result: Optional[np.ndarray] = None
    error: Optional[BaseException] = None
    done: bool = False


@dataclass
class BatchStats:
    runs: int = 0
    rows: int = 0
    largest_group: int = 0  # most requests served by one run

    def record(self, rows: int, group: int) -> None:
        """One run of `rows` rows that served `group` requests."""
        self.runs += 1
        self.rows += rows
        self.largest_group = max(self.largest_group, group)


def take_group(queue: list, max_rows: int, wanted: Callable[[object], bool] = lambda item: True) -> list:
    """Pop the oldest queued items (each with `.rows`) up to `max_rows` rows in all; the first
    always fits (callers split larger requests). Items not `wanted` any more are dropped."""
    group, total = [], 0
    while queue and (not group or total + len(queue[0].rows) <= max_rows):
        item = queue.pop(0)
        if wanted(item):
            group.append(item)
            total += len(item.rows)
    return group


def parts(out: np.ndarray, group: list) -> list[np.ndarray]:
    """A shared run's output, cut back into each request's rows, in queue order."""
    bounds = np.cumsum([0] + [len(item.rows) for item in group])
    return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def in_chunks(rows: np.ndarray, max_rows: int) -> list[np.ndarray]:
    return [rows[i : i + max_rows] for i in range(0, len(rows), max_rows)]


def checked(chunks: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The chunks, each handed out only while the request's client is still there."""
    for chunk in chunks:
        cancellation.check()
        yield chunk


@dataclass(eq=False)
class MicroBatcher:
    """Calls `run` on batches of at most `max_rows` rows (a larger request runs in chunks)."""

    run: Callable[[np.ndarray], np.ndarray]
    max_rows: int = 1024
    enabled: bool = True  # off: every call runs alone (onnxruntime sessions are thread-safe)
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) > self.max_rows:  # a departed client's chunks stop at the next one (cancellation.py)
            return np.concatenate([self(chunk) for chunk in checked(in_chunks(rows, self.max_rows))])
        if not self.enabled:
            with tracing.phase("graph run", rows=len(rows), requests=1):
                out = self.run(rows)
            with self._queue_lock:  # each call is its own run: counted so, for stats readers
                self.stats.record(len(rows), 1)
            return out
        mine = _Pending(rows=rows)
        queued = tracing.now() if tracing.on() else 0
        with self._queue_lock:
            self._queue.append(mine)
        while not mine.done:
            with self._run_lock:
                if not mine.done:  # else a run that held the lock before us served us
                    self._run_group(self._take_group())
        if queued:
            mine.traced(queued)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _take_group(self) -> list[_Pending]:
        with self._queue_lock:
            return take_group(self._queue, self.max_rows)

    def _run_group(self, group: list[_Pending]) -> None:
        started = tracing.now() if tracing.on() else 0
        try:
            batch = group[0].rows if len(group) == 1 else np.concatenate([p.rows for p in group])
            out = self.run(batch)  # (total, ...)
            for p, part in zip(group, parts(out, group)):
                p.result = part
        except Exception as e:
            if len(group) == 1:
                group[0].error = e
            else:  # run each alone, so one request's failure is not its neighbours'
                for p in group:
                    try:
                        p.result = self.run(p.rows)
                    except Exception as e_alone:
                        p.error = e_alone
        finally:  # every caller is released, none hangs
            _ran_together(group, started)
            for p in group:
                p.done = True
            self.stats.record(sum(len(p.rows) for p in group), len(group))


@dataclass(eq=False)
class _Waiting(_Ran):
    rows: np.ndarray = None
    future: asyncio.Future = None


class AsyncMicroBatcher:
    """Awaitable: `await batcher(rows)` -> run(rows), in batches of at most `max_rows` rows, each
    run in `executor` while the loop goes on accepting requests. Off (`enabled=False`), every call
    is its own run, still off the loop. `gather_s` > 0: after a run that served k > 1 callers, the
    next waits until 2k are queued or `gather_s` has passed (see the module's docstring)."""

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        executor: Executor,
        max_rows: int = 1024,
        enabled: bool = True,
        gather_s: float = 0.0,
    ):
        self.run, self.executor, self.max_rows, self.enabled = run, executor, max_rows, enabled
        self.gather_s = gather_s
        self.stats = BatchStats()
        self._queue: list[_Waiting] = []
        self._drainer: Optional[asyncio.Task] = None
        self._gathering: Optional[asyncio.Future] = None
        self._wanted = 0

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) > self.max_rows:
            return np.concatenate([await self(chunk) for chunk in in_chunks(rows, self.max_rows)])
        loop = asyncio.get_running_loop()
        if not self.enabled:
            with tracing.phase("graph run", rows=len(rows), requests=1):
                out = await loop.run_in_executor(self.executor, self.run, rows)
            self.stats.record(len(rows), 1)
            return out
        waiting = _Waiting(rows=rows, future=loop.create_future())
        self._queue.append(waiting)
        if self._gathering is not None and len(self._queue) >= self._wanted:
            _settle(self._gathering)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        if not tracing.on():
            return await waiting.future
        queued = tracing.now()
        try:
            return await waiting.future
        finally:
            waiting.traced(queued)

    async def _drain(self) -> None:
        group: list[_Waiting] = []
        last = 0
        try:
            while self._queue:
                if last > 1 and self.gather_s > 0 and len(self._queue) < 2 * last:
                    await self._gather(2 * last)
                # callers that went away while queued are dropped
                group = take_group(self._queue, self.max_rows, lambda w: not w.future.done())
                if group:
                    await self._run_group(group)
                last = len(group)
                group = []
        finally:  # left early only when the drain itself is cancelled (the loop shutting down)
            self._drainer = None
            for w in group + self._queue:  # no caller waits forever
                _settle(w.future, error=RuntimeError("the micro-batcher stopped before this run"))
            self._queue.clear()

    async def _gather(self, wanted: int) -> None:
        """Wait until `wanted` callers are queued (__call__ wakes it) or gather_s has passed."""
        loop = asyncio.get_running_loop()
        self._gathering, self._wanted = loop.create_future(), wanted
        timer = loop.call_later(self.gather_s, _settle, self._gathering)
        try:
            await self._gathering
        finally:
            timer.cancel()
            self._gathering, self._wanted = None, 0

    async def _run_group(self, group: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        started = tracing.now() if tracing.on() else 0
        batch = group[0].rows if len(group) == 1 else np.concatenate([w.rows for w in group])
        try:
            out = await loop.run_in_executor(self.executor, self.run, batch)
        except Exception as e:
            if len(group) == 1:
                _settle(group[0].future, error=e)
            else:  # run each alone, so one request's failure is not its neighbours'
                for w in group:
                    try:
                        _settle(w.future, await loop.run_in_executor(self.executor, self.run, w.rows))
                    except Exception as e_alone:
                        _settle(w.future, error=e_alone)
        else:
            _ran_together(group, started)
            for w, part in zip(group, parts(out, group)):
                _settle(w.future, part)
        self.stats.record(len(batch), len(group))


def _settle(future: asyncio.Future, result: Optional[np.ndarray] = None, error: Optional[BaseException] = None) -> None:
    if future.done():  # its caller was cancelled (client gone): nobody to hand it to
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SoleClient:
    """Whether one connection has had the server to itself for at least `quiet_s`: every request
    since then came from the same client address and port (ASGI's `scope["client"]`).

    A small request from such a client gains nothing from batching (no neighbour to share a run
    with) and its graph run is shorter than the two thread hand-offs the batcher costs, so it can
    run on the loop. The test is on connections, not on requests in flight: a server answering
    requests on the loop one by one never has two in flight, however many clients wait, and would
    fall into serving them one at a time (docs/PERFORMANCE.md#finding-inline-tried). Several clients
    interleave their requests, so the client changes at almost every request and this says no
    within `quiet_s` of a second client's first request. A client that opens a connection per
    request counts as a new client every time: its requests are batched, as before.
    """

    def __init__(self, quiet_s: float = 0.01):
        self.quiet_s = quiet_s
        self._client: object = None
        self._since = -math.inf  # when the latest client's run of requests began

    def alone(self, client: object, now: float) -> bool:
        """`now`: time.monotonic() at this request. A request with no client address never counts as alone."""
        if client is None or client != self._client:
            self._client, self._since = client, now
            return False
        return now - self._since >= self.quiet_s
