"""Admission control: a bound on the memory the requests a worker holds at once may need.

Each request that does model work is charged its estimated peak bytes (`cost`: latents, samples and
the encoded answer, from per-format figures measured with tracemalloc, bench/request_memory.py)
before any of that work starts. While the charges in flight would pass GANSERVE_ADMISSION_BYTES, a
request waits, first come first served, in a queue of at most GANSERVE_ADMISSION_QUEUE requests for
at most GANSERVE_ADMISSION_WAIT_S seconds; then it is refused with 503 and `Retry-After`, as Triton
refuses when its queue is full. A request dearer than the whole budget is let in alone. Waiting
requests hold only their parsed body. Without this, memory grew with concurrency times answer size
until the out-of-memory killer took the worker and every request in it (issue #20).

The routes (routes.py) wait on the event loop (`admit`); BentoML's own API methods (service.py),
which run in threads, wait with `admit_sync`. Both share one budget per worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Optional

# The peak bytes per sample value of each answer format are in the format table
# (core/formats.py `peak_bytes_per_value`); the caller passes its format's figure.
LATENT_BYTES_PER_VALUE = 8  # float32 latents, plus their float64 draw where truncation redraws
MIN_COST = 16 * 1024  # a request's own objects (scope, body, response) whatever its size
TRIM_WORTHY_COST = 4 * 1024 * 1024  # a request this large leaves heap worth trimming (memory.py)
# /score: the body is decoded to float32 samples; JSON goes through Python floats (~32 bytes per
# value for ~10 bytes of text), a PNG inflates ~10x to float32; an npy body is held with its array
# and the micro-batcher's copy of it. Plus what decoding costs whatever the size (a PNG's inflate
# window and PIL's decoder). Measured in tests/service/runtime/test_admission_charges.py.
SCORE_BYTES_PER_BODY_BYTE = {"json": 6, "npy": 4, "png": 16}
SCORE_FIXED_BYTES = {"json": 32 * 1024, "npy": 32 * 1024, "png": 128 * 1024}


# A filter's round holds, per candidate, its float64 draw and float32 latent (12 bytes a latent
# value), its float32 sample (4 a sample value) and its logits (8: D's and, for drs, the ratio's).
ROUND_BYTES_PER_LATENT_VALUE = 12
ROUND_BYTES_PER_SAMPLE_VALUE = 4
ROUND_BYTES_PER_CANDIDATE = 8
# /invert's search round (core/inversion.py _invert): 12 bytes a latent value as above; a sample
# value's draw (4) and the image repeated beside it (4), both as float64 in the error (16; numpy
# computes their difference and its square in the first copy's buffer): 24, as measured (256 mnist
# images, refine 64: 81.4 MB at the peak, 18.7 KB a candidate), plus 4 of headroom.
# Checked in tests/service/runtime/test_admission_charges.py.
SEARCH_BYTES_PER_LATENT_VALUE = 12
SEARCH_BYTES_PER_SAMPLE_VALUE = 28


def filter_rows(n: int, draws: int) -> int:
    """Candidates a filtered request for n samples may hold at once. core/sampling.py from_seed
    draws 2n first, then sizes each round to finish at the acceptance seen so far, capped by the
    draw bound: after a first round that accepted one candidate of 2n, the next holds all the
    (draws - 2) n draws left. That worst case is what the charge must cover (docs/DESIGN.md,
    "Admission charges a filter's worst round"); 0 without a filter."""
    return 0 if draws <= 1 else n * max(2, draws - 2)


def sample_cost(
    n: int, latent_dim: int, sample_values: int, bytes_per_value: int, draws: int = 1, fixed_bytes: int = 0
) -> int:
    """Estimated peak bytes of a request for n samples whose format peaks at `bytes_per_value` a
    sample value plus `fixed_bytes` whatever n; `draws` > 1: a filter that may draw up to n x draws
    candidates, charged for its largest round."""
    per_sample = LATENT_BYTES_PER_VALUE * latent_dim + bytes_per_value * sample_values
    per_candidate = (
        ROUND_BYTES_PER_LATENT_VALUE * latent_dim
        + ROUND_BYTES_PER_SAMPLE_VALUE * sample_values
        + ROUND_BYTES_PER_CANDIDATE
    )
    return max(MIN_COST, fixed_bytes + n * per_sample + filter_rows(n, draws) * per_candidate)


def search_cost(rows: int, latent_dim: int, sample_values: int) -> int:
    """Peak bytes of /invert's search holding `rows` candidates at once (core/inversion.py): per
    candidate its float64 step and float32 latent, and per sample value its draw, the image repeated
    beside it, and the float64 copies and difference the error is computed from."""
    return rows * (SEARCH_BYTES_PER_LATENT_VALUE * latent_dim + SEARCH_BYTES_PER_SAMPLE_VALUE * sample_values)


def score_cost(body_bytes: int, kind: str) -> int:
    return max(MIN_COST, SCORE_FIXED_BYTES.get(kind, 128 * 1024) + body_bytes * SCORE_BYTES_PER_BODY_BYTE.get(kind, 16))


class Overloaded(RuntimeError):
    """Refused: the worker's budget stayed full for the whole wait, or its queue was full.
    http/errors.py answers it 503 naming `server`, with Retry-After: `retry_after_s`."""

    def __init__(self, problem: str, retry_after_s: int):
        super().__init__(f"server: {problem}")
        self.field, self.problem, self.status = "server", problem, 503
        self.retry_after_s = retry_after_s


class _Waiter:
    __slots__ = ("cost", "granted", "loop", "future", "event")

    def __init__(self, cost: int, loop: Optional[asyncio.AbstractEventLoop] = None):
        self.cost, self.granted, self.loop = cost, False, loop
        self.future: Optional[asyncio.Future] = loop.create_future() if loop is not None else None
        self.event: Optional[threading.Event] = None if loop is not None else threading.Event()

    def wake(self) -> None:  # under the admission's lock
        self.granted = True
        if self.event is not None:
            self.event.set()
        else:
            self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class Admission:
    """One worker's budget. `budget` 0: no bound (every request admitted at once, still counted)."""

    def __init__(self, budget: int, queue: int, wait_s: float, metrics: bool = True, trimmer=None):
        self.budget, self.max_queue, self.wait_s, self.metrics = budget, queue, wait_s, metrics
        self.trimmer = trimmer  # memory.Trimmer: the freed heap goes back to the OS once idle
        self.retry_after_s = max(1, math.ceil(wait_s))
        self._lock = threading.Lock()
        self._waiting: deque[_Waiter] = deque()
        self.in_flight_bytes = 0
        self.in_flight = 0
        self.refused = 0
        self._publisher: Optional[_Publisher] = None  # started by the first change (in the worker)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def _fits(self, cost: int) -> bool:
        return self.budget == 0 or self.in_flight == 0 or self.in_flight_bytes + cost <= self.budget

    def _try_enter(self, cost: int, loop: Optional[asyncio.AbstractEventLoop]) -> Optional[_Waiter]:
        """Under the lock: admit now (nobody waits before it and it fits: None), queue it (its
        waiter, made only then: most requests never wait), or refuse."""
        if not self._waiting and self._fits(cost):
            self._take(cost)
            _report(self)
            return None
        if len(self._waiting) >= self.max_queue:
            self.refused += 1
            _report(self, refused=True)
            raise Overloaded(
                f"overloaded: {self.in_flight} request(s) hold this worker's budget and "
                f"{len(self._waiting)} wait; retry in {self.retry_after_s} s",
                self.retry_after_s,
            )
        waiter = _Waiter(cost, loop)
        self._waiting.append(waiter)
        _report(self)
        return waiter

    def _take(self, cost: int) -> None:
        self.in_flight_bytes += cost
        self.in_flight += 1
        if self.trimmer is not None and cost >= TRIM_WORTHY_COST:
            self.trimmer.busy()

    def _release(self, cost: int) -> None:
        with self._lock:
            self.in_flight_bytes -= cost
            self.in_flight -= 1
            while self._waiting and self._fits(self._waiting[0].cost):  # first come, first served
                waiter = self._waiting.popleft()
                self._take(waiter.cost)
                waiter.wake()
            _report(self)
            idle = self.in_flight == 0
        if idle and self.trimmer is not None:
            self.trimmer.idle()

    def _give_up(self, waiter: _Waiter) -> None:
        """The wait ran out: leave the queue and refuse, unless it was let in meanwhile."""
        with self._lock:
            if waiter.granted:
                return
            self._waiting.remove(waiter)
            self.refused += 1
            _report(self, refused=True)
            # Those behind it may fit now that it no longer blocks the head of the queue.
            while self._waiting and self._fits(self._waiting[0].cost):
                w = self._waiting.popleft()
                self._take(w.cost)
                w.wake()
            _report(self)
        raise Overloaded(
            f"overloaded: no room in this worker within {self.wait_s:g} s; retry in {self.retry_after_s} s",
            self.retry_after_s,
        )

    async def enter(self, cost: int) -> Callable[[], None]:
        """On the event loop: hold `cost` bytes of the budget (Overloaded if refused); returns the
        release, to call once the answer has been sent (it may be called more than once)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            waiter = self._try_enter(cost, loop)
        if waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter.future), self.wait_s)
            except TimeoutError:
                self._give_up(waiter)  # raises Overloaded unless it was let in meanwhile
            except asyncio.CancelledError:  # the request timed out or its client left while it waited
                with contextlib.suppress(Overloaded):
                    self._give_up(waiter)
                if waiter.granted:
                    self._release(cost)
                raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(cost)

        return release

    @contextlib.asynccontextmanager
    async def admit(self, cost: int) -> AsyncIterator[None]:
        """On the event loop, for a block: `async with admission.admit(cost): ...`."""
        release = await self.enter(cost)
        try:
            yield
        finally:
            release()

    @contextlib.contextmanager
    def admit_sync(self, cost: int) -> Iterator[None]:
        """From a thread: the same, waiting on a threading.Event."""
        with self._lock:
            waiter = self._try_enter(cost, None)
        if waiter is not None and not waiter.event.wait(self.wait_s):
            self._give_up(waiter)
        try:
            yield
        finally:
            self._release(cost)


def _report(admission: Admission, refused: bool = False) -> None:
    """What /metrics shows (metrics.py). A refusal is counted at once (rare); the gauges are
    published by a thread at most every PUBLISH_INTERVAL_S, after the change: writing three
    multiprocess gauges (mmap'd files) on every admit and release was a measurable share of a
    one-sample request's CPU (docs/PERFORMANCE.md#finding-admission-gauges), and a scrape every
    few seconds cannot tell the difference."""
    if not admission.metrics:
        return
    if refused:
        from service.runtime import metrics

        metrics.count_refusal()
    publisher = admission._publisher
    if publisher is None:
        publisher = admission._publisher = _Publisher(admission)
    publisher.changed()


PUBLISH_INTERVAL_S = 0.2


class _Publisher:
    """Writes the admission's state to its gauges after a change, then waits PUBLISH_INTERVAL_S
    before writing again: the last state of a burst is shown within that interval, and an idle
    worker writes nothing."""

    def __init__(self, admission: Admission):
        self.admission = admission
        self._changed = threading.Event()
        threading.Thread(target=self._run, name="ganserve-admission-metrics", daemon=True).start()

    def changed(self) -> None:
        if not self._changed.is_set():  # cheaper than set()'s lock and notify when already set
            self._changed.set()

    def _run(self) -> None:
        from service.runtime import metrics

        while True:
            self._changed.wait()
            self._changed.clear()  # before reading: a change from now on is published next time
            a = self.admission
            metrics.admission_state(a.in_flight, a.in_flight_bytes, len(a._waiting))
            time.sleep(PUBLISH_INTERVAL_S)


_instance: Optional[Admission] = None
_instance_lock = threading.Lock()


def get() -> Admission:
    """This worker's admission, made from the settings on first use."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                from service.settings import get_settings

                s = get_settings()
                from service.runtime.memory import Trimmer

                _instance = Admission(
                    s.admission_bytes,
                    s.admission_queue,
                    s.admission_wait_s,
                    trimmer=Trimmer() if s.malloc_trim else None,
                )
    return _instance
