"""Micro-batchers: concurrent small requests to one graph share one run of it.

Two front doors to the same idea, no timer in either: an idle server adds no latency, while
callers that arrive during a run are served together by the next one (BentoML's adaptive batching
does the same for one-argument APIs; ours have many arguments, so the engine batches below the API).

- `MicroBatcher`, for callers in threads (large requests, the dataset job, the CLI): leader/
  follower, each caller queues its rows and takes the run lock; whoever holds it runs every row
  queued so far as one batch and hands each caller its part.
- `AsyncMicroBatcher`, for callers on the event loop (small POST /sample requests): callers await
  a future, one drain task runs the queue in a worker thread. One thread hop per run instead of one
  per request: at n = 1 the hop cost more than the graph run (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@dataclass(eq=False)
class _Pending:
    rows: np.ndarray
    result: Optional[np.ndarray] = None
    error: Optional[BaseException] = None
    done: bool = False


@dataclass
class BatchStats:
    runs: int = 0
    rows: int = 0
    largest_group: int = 0  # most requests served by one run


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
        if len(rows) > self.max_rows:
            parts = [self(rows[i : i + self.max_rows]) for i in range(0, len(rows), self.max_rows)]
            return np.concatenate(parts)
        if not self.enabled:
            out = self.run(rows)
            with self._queue_lock:  # each call is its own run: counted so, for stats readers
                self.stats.runs += 1
                self.stats.rows += len(rows)
                self.stats.largest_group = max(self.stats.largest_group, 1)
            return out
        mine = _Pending(rows)
        with self._queue_lock:
            self._queue.append(mine)
        while not mine.done:
            with self._run_lock:
                if not mine.done:  # else a run that held the lock before us served us
                    self._run_group(self._take_group())
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _take_group(self) -> list[_Pending]:
        # Oldest first, up to max_rows; the first request always fits (it is <= max_rows).
        with self._queue_lock:
            group, total = [], 0
            while self._queue and (not group or total + len(self._queue[0].rows) <= self.max_rows):
                item = self._queue.pop(0)
                group.append(item)
                total += len(item.rows)
            return group

    def _run_group(self, group: list[_Pending]) -> None:
        try:
            batch = group[0].rows if len(group) == 1 else np.concatenate([p.rows for p in group])
            out = self.run(batch)  # (total, ...)
            start = 0
            for p in group:
                p.result = out[start : start + len(p.rows)]
                start += len(p.rows)
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
            for p in group:
                p.done = True
            self.stats.runs += 1
            self.stats.rows += sum(len(p.rows) for p in group)
            self.stats.largest_group = max(self.stats.largest_group, len(group))


@dataclass(eq=False)
class _Waiting:
    rows: np.ndarray
    future: asyncio.Future


class AsyncMicroBatcher:
    """Awaitable: `await batcher(rows)` -> run(rows), in batches of at most `max_rows` rows, each
    run in `executor` while the loop goes on accepting requests. Off (`enabled=False`), every call
    is its own run, still off the loop."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], executor: Executor, max_rows: int = 1024,
                 enabled: bool = True):
        self.run, self.executor, self.max_rows, self.enabled = run, executor, max_rows, enabled
        self.stats = BatchStats()
        self._queue: list[_Waiting] = []
        self._drainer: Optional[asyncio.Task] = None

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) > self.max_rows:
            parts = [await self(rows[i : i + self.max_rows]) for i in range(0, len(rows), self.max_rows)]
            return np.concatenate(parts)
        loop = asyncio.get_running_loop()
        if not self.enabled:
            out = await loop.run_in_executor(self.executor, self.run, rows)
            self._count(len(rows), 1)
            return out
        waiting = _Waiting(rows, loop.create_future())
        self._queue.append(waiting)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await waiting.future

    async def _drain(self) -> None:
        group: list[_Waiting] = []
        try:
            while self._queue:
                group = self._take_group()
                if group:
                    await self._run_group(group)
                group = []
        finally:  # left early only when the drain itself is cancelled (the loop shutting down)
            self._drainer = None
            for w in group + self._queue:  # no caller waits forever
                _settle(w.future, error=RuntimeError("the micro-batcher stopped before this run"))
            self._queue.clear()

    def _take_group(self) -> list[_Waiting]:
        # Oldest first, up to max_rows; callers that went away while queued are dropped.
        group, total = [], 0
        while self._queue and (not group or total + len(self._queue[0].rows) <= self.max_rows):
            waiting = self._queue.pop(0)
            if not waiting.future.done():
                group.append(waiting)
                total += len(waiting.rows)
        return group

    async def _run_group(self, group: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
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
            start = 0
            for w in group:
                _settle(w.future, out[start : start + len(w.rows)])
                start += len(w.rows)
        self._count(len(batch), len(group))

    def _count(self, rows: int, group: int) -> None:
        self.stats.runs += 1
        self.stats.rows += rows
        self.stats.largest_group = max(self.stats.largest_group, group)


def _settle(future: asyncio.Future, result: Optional[np.ndarray] = None, error: Optional[BaseException] = None) -> None:
    if future.done():  # its caller was cancelled (client gone): nobody to hand it to
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
