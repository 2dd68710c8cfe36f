"""A micro-batcher: concurrent small requests to one graph share one run of it.

Leader/follower, no timer and no extra thread: each caller queues its rows, then takes the run
lock; whoever holds it runs every row queued so far as one batch and hands each caller its part.
An idle server therefore adds no latency, while callers that arrive during a run are served
together by the next one (BentoML's adaptive batching does the same for one-argument APIs; ours
have many arguments, so the engine batches below the API instead).
"""

from __future__ import annotations

import threading
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
