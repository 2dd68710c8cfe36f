"""The micro-batchers (threads and event loop): concurrent callers share runs, each gets exactly its
rows, faults stay local, and a caller that goes away harms nobody."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.runtime.batching import AsyncMicroBatcher, MicroBatcher, SoleClient


class SlowDouble:
    """A stand-in graph that takes a while per run (so callers pile up) and records batch sizes."""

    def __init__(self, fail_on: float | None = None):
        self.batch_sizes: list[int] = []
        self.fail_on = fail_on

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(x))
        time.sleep(0.02)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise RuntimeError("graph failed")
        return x * 2


def assert_callers_get_their_own_rows(batcher: MicroBatcher, callers: int) -> None:
    """`callers` threads, released together, each send 2 rows of its own number; each must get
    back exactly its rows, doubled."""
    start = threading.Barrier(callers)

    def call(i: int) -> np.ndarray:
        start.wait()
        return batcher(np.full((2, 3), i, np.float32))

    with ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(call, range(callers)))
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, np.full((2, 3), 2 * i))


def test_concurrent_callers_share_runs_and_get_their_own_rows():
    graph = SlowDouble()
    batcher = MicroBatcher(graph, max_rows=64)
    assert_callers_get_their_own_rows(batcher, 16)
    assert batcher.stats.rows == 32
    assert len(graph.batch_sizes) < 16  # some requests were served together
    assert batcher.stats.largest_group > 1
    assert max(graph.batch_sizes) <= 64


def test_a_request_larger_than_max_rows_runs_in_chunks():
    graph = SlowDouble()
    batcher = MicroBatcher(graph, max_rows=4)
    x = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(batcher(x), x * 2)
    assert graph.batch_sizes == [4, 4, 2]


def test_one_failing_request_does_not_fail_its_neighbours():
    graph = SlowDouble(fail_on=-1.0)
    batcher = MicroBatcher(graph, max_rows=64)
    start = threading.Barrier(6)

    def call(i: int):
        start.wait()
        try:
            return batcher(np.full((1, 2), -1.0 if i == 3 else i, np.float32))
        except RuntimeError as e:
            return e

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(6)))
    assert isinstance(results[3], RuntimeError)
    for i in (0, 1, 2, 4, 5):
        np.testing.assert_array_equal(results[i], np.full((1, 2), 2 * i))


def test_after_a_failure_the_batcher_keeps_serving():
    batcher = MicroBatcher(SlowDouble(fail_on=-1.0))
    with pytest.raises(RuntimeError, match="graph failed"):
        batcher(np.full((1, 1), -1.0, np.float32))
    np.testing.assert_array_equal(batcher(np.ones((1, 1), np.float32)), [[2.0]])


def test_switched_off_every_caller_runs_alone():
    graph = SlowDouble()
    batcher = MicroBatcher(graph, max_rows=64, enabled=False)
    assert_callers_get_their_own_rows(batcher, 8)
    assert sorted(graph.batch_sizes) == [2] * 8  # no run served two callers
    assert (batcher.stats.runs, batcher.stats.rows, batcher.stats.largest_group) == (8, 16, 1)


# --- the event loop's batcher ------------------------------------------------------------------


def gather_rows(batcher: AsyncMicroBatcher, values: list[float]) -> list:
    """One caller per value, all on one loop, each sending 2 rows of its value; results or errors."""

    async def main():
        return await asyncio.gather(*(batcher(np.full((2, 3), v, np.float32)) for v in values), return_exceptions=True)

    return asyncio.run(main())


def test_async_callers_share_runs_off_the_loop_and_get_their_own_rows():
    graph, runner = SlowDouble(), ThreadPoolExecutor(2)
    loop_threads = set()
    batcher = AsyncMicroBatcher(lambda x: (loop_threads.add(threading.get_ident()), graph(x))[1], runner, max_rows=64)
    results = gather_rows(batcher, list(range(16)))
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, np.full((2, 3), 2 * i))
    assert threading.get_ident() not in loop_threads  # the graph never ran on the loop's thread
    assert len(graph.batch_sizes) < 16 and batcher.stats.largest_group > 1
    assert batcher.stats.rows == 32 and max(graph.batch_sizes) <= 64
    runner.shutdown()


def test_async_a_request_larger_than_max_rows_runs_in_chunks():
    graph = SlowDouble()
    batcher = AsyncMicroBatcher(graph, ThreadPoolExecutor(1), max_rows=4)
    x = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(asyncio.run(batcher(x)), x * 2)
    assert graph.batch_sizes == [4, 4, 2]


def test_async_one_failing_request_does_not_fail_its_neighbours_and_the_batcher_goes_on():
    batcher = AsyncMicroBatcher(SlowDouble(fail_on=-1.0), ThreadPoolExecutor(1), max_rows=64)
    results = gather_rows(batcher, [0, 1, -1.0, 3])
    assert isinstance(results[2], RuntimeError)
    for i in (0, 1, 3):
        np.testing.assert_array_equal(results[i], np.full((2, 3), 2 * i))
    np.testing.assert_array_equal(gather_rows(batcher, [5])[0], np.full((2, 3), 10))


def test_async_a_caller_that_goes_away_leaves_the_others_served():
    graph = SlowDouble()
    batcher = AsyncMicroBatcher(graph, ThreadPoolExecutor(1), max_rows=64)

    async def main():
        first = asyncio.ensure_future(batcher(np.full((2, 3), 1, np.float32)))  # runs alone, 20 ms
        await asyncio.sleep(0.005)
        gone = asyncio.ensure_future(batcher(np.full((2, 3), 7, np.float32)))  # queued behind it
        stays = asyncio.ensure_future(batcher(np.full((2, 3), 3, np.float32)))
        await asyncio.sleep(0)
        gone.cancel()  # the client disconnected while queued
        return await first, await stays, gone.cancelled()

    first, stays, cancelled = asyncio.run(main())
    np.testing.assert_array_equal(first, np.full((2, 3), 2))
    np.testing.assert_array_equal(stays, np.full((2, 3), 6))
    assert cancelled and graph.batch_sizes == [2, 2]  # the cancelled rows were never run


def test_async_switched_off_every_caller_runs_alone():
    graph = SlowDouble()
    batcher = AsyncMicroBatcher(graph, ThreadPoolExecutor(4), max_rows=64, enabled=False)
    results = gather_rows(batcher, list(range(8)))
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, np.full((2, 3), 2 * i))
    assert sorted(graph.batch_sizes) == [2] * 8
    assert (batcher.stats.runs, batcher.stats.rows, batcher.stats.largest_group) == (8, 16, 1)


class Gated:
    """A graph whose runs wait for `gate` (a threading.Event) and record their sizes."""

    def __init__(self):
        self.gate, self.sizes = threading.Event(), []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.gate.wait(5)
        self.sizes.append(len(x))
        return x * 2


def _load_then_stragglers(gather_s: float, stragglers: int, spacing_s: float):
    """Two callers share a first run, held until a third has queued behind it (the batcher under
    load); after it, `stragglers` more arrive one by one, `spacing_s` apart. Returns (run sizes,
    how long the third caller waited)."""
    graph = Gated()
    batcher = AsyncMicroBatcher(graph, ThreadPoolExecutor(1), max_rows=64, gather_s=gather_s)

    async def caller(value: float):
        np.testing.assert_array_equal(await batcher(np.full((1, 2), value, np.float32)), np.full((1, 2), 2 * value))

    async def straggler(i: int):
        await asyncio.sleep(spacing_s * (i + 1))
        await caller(float(i))

    async def scenario():
        first = [asyncio.ensure_future(caller(1.0)) for _ in range(2)]
        await asyncio.sleep(0.05)  # both taken into the first run, which waits for the gate
        t0 = time.monotonic()
        third = asyncio.ensure_future(caller(3.0))  # queued during the run
        await asyncio.sleep(0.02)
        graph.gate.set()
        await asyncio.gather(*first, *(straggler(i) for i in range(stragglers)))
        await third
        return time.monotonic() - t0

    waited = asyncio.run(scenario())
    return graph.sizes, waited


def test_under_load_a_run_gathers_twice_the_last_groups_callers():
    # After a run of 2, the next waits for 4: the caller queued during it and three stragglers
    # 10 ms apart share one run.
    sizes, _ = _load_then_stragglers(gather_s=1.0, stragglers=3, spacing_s=0.01)
    assert sizes == [2, 4]
    # Without gathering the queued caller runs at once, and each straggler alone as it comes.
    sizes, _ = _load_then_stragglers(gather_s=0.0, stragglers=3, spacing_s=0.01)
    assert sizes == [2, 1, 1, 1, 1]


def test_the_gathering_wait_is_bounded_and_a_lone_caller_never_waits():
    # Nobody follows the caller queued during the run of 2: it waits the window out (0.2 s after
    # that run), no longer, then runs alone.
    sizes, waited = _load_then_stragglers(gather_s=0.2, stragglers=0, spacing_s=0.01)
    assert sizes == [2, 1] and 0.2 <= waited < 1.0, waited
    # An idle batcher's first caller (no run has served several) runs at once, whatever the window.
    graph = Gated()
    graph.gate.set()
    batcher = AsyncMicroBatcher(graph, ThreadPoolExecutor(1), max_rows=64, gather_s=5.0)

    async def lone():
        for _ in range(3):  # one after another: every run serves one caller
            t0 = time.monotonic()
            await batcher(np.ones((1, 2), np.float32))
            assert time.monotonic() - t0 < 1.0

    asyncio.run(lone())
    assert graph.sizes == [1, 1, 1]


def test_sole_client_needs_one_client_for_the_whole_quiet_time():
    sole = SoleClient(quiet_s=0.01)
    a, b = ("127.0.0.1", 50001), ("127.0.0.1", 50002)
    assert not sole.alone(a, 0.0)  # its first request: who else is there is not known yet
    assert not sole.alone(a, 0.005)
    assert sole.alone(a, 0.010) and sole.alone(a, 1.0)
    assert not sole.alone(b, 1.001)  # a second client ends it at once
    assert not sole.alone(a, 1.002) and not sole.alone(b, 1.003)  # two clients interleaving: never alone
    assert not sole.alone(b, 1.012)
    assert sole.alone(b, 1.014)  # b alone since 1.003
    assert not sole.alone(None, 2.0) and not sole.alone(None, 3.0)  # no client address: never alone
