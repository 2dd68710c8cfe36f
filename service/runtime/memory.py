"""Memory that comes back after a burst: glibc's malloc_trim once a worker has gone idle.

After a burst of large answers (tens of MB each: json at n = 4096), glibc keeps the freed heap
for reuse: its mmap threshold rises to the largest block freed so far, so later big buffers come
from the heap, and the heap's free pages stay in RSS. A worker that grew in a burst stayed that
large when idle (issue #20). `python -m service serve` and the image also set MALLOC_ARENA_MAX=2
(fewer per-thread heaps to fragment) and fixed thresholds: buffers up to 32 MiB come from the heap
and stay there while the worker is busy (MALLOC_TRIM_THRESHOLD_ of 1 GiB: no trimming on free).
A graph run's activations (4.9 MB a layer for n = 1024 of the paper's G, 20 MB at n = 4096) were
mmapped under the old 4 MiB threshold, so every run faulted in fresh zeroed pages: 7% of a worker's
CPU at n = 1024 (docs/PERFORMANCE.md#finding-allocator-reuse). What the heap holds goes back here,
once idle; measured in bench/memory_soak.py (docs/PERFORMANCE.md#memory-after-burst).

`Trimmer.idle()` is called when admission control's work in flight drops to none; once the worker
has stayed idle for TRIM_AFTER_S, one malloc_trim(0) hands the free heap pages back to the OS (a
few ms, in a thread of its own, never on the event loop). Not glibc (musl, macOS): does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from typing import Optional

log = logging.getLogger("ganserve.memory")
TRIM_AFTER_S = 1.0
# The environment `python -m service serve` and the image give the server (docs/PERFORMANCE.md#memory-after-burst).
ALLOCATOR_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def _malloc_trim() -> Optional[Callable[[int], int]]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class Trimmer:
    def __init__(self, after_s: float = TRIM_AFTER_S):
        self.after_s = after_s
        self._trim = _malloc_trim()
        self._wake = threading.Event()
        self._busy_since_trim = False
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every busy(): a trim waits for a quiet generation
        self._idle_generation = 0
        self.trims = 0
        self._thread: Optional[threading.Thread] = None

    def busy(self) -> None:
        with self._lock:
            self._generation += 1
            self._busy_since_trim = True

    def idle(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            if not self._busy_since_trim:
                return
            self._idle_generation = self._generation  # a busy() after this one cancels its trim
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="malloc-trim", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                generation = self._idle_generation
            if self._wake.wait(self.after_s):  # more idles came: start the wait again
                self._wake.set()
                continue
            with self._lock:
                if generation != self._generation:  # busy again meanwhile: wait for the next idle
                    continue
                self._busy_since_trim = False
            self._trim(0)
            self.trims += 1
