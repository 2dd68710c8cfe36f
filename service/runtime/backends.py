"""The engines that can run a model's graphs, behind one interface, and the choice between them.

A backend opens an ONNX file as a session with the part of onnxruntime's session interface the
engine uses (`run`, `get_inputs`, `get_outputs`, `get_providers`), so the engine's card checks,
warm-up and three ways to run a graph are one code path whatever runs them. The engine names no
backend: it asks this module which backends can run on its providers (`runnable`), opens graphs
with the one chosen (`get(name).open`), and `choose` picks between them.

onnxruntime runs every graph (and is the only one for CUDA); the OpenVINO runtime, when installed
(the `openvino` extra), reads the same ONNX files and was the faster CPU engine on some hosts, the
slower on others (docs/PERFORMANCE.md#hosts, #finding-openvino-auto). Which is faster depends on
the host, so `backend=auto` times the runnable backends on the model's own generator at load time
and serves with the fastest, saying why (`Choice.reason`, shown by GET /models).

To add a backend: a class with `name`, `available()`, `runs_on(providers)` and `open(...)` in
BACKENDS below, and its name in settings.Settings.backend (tests/service/runtime/test_backends.py
holds the two lists together). Nothing else changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

log = logging.getLogger("ganserve.backends")

ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
OPENVINO_CPU = "OpenVINO:CPU"  # what get_providers() says for an OpenVINO session
CPU_PROVIDER = "CPUExecutionProvider"
# auto keeps the default backend (onnxruntime: the tested one, and the CUDA path) unless another
# is faster by more than this: a tie within timing noise is not a reason to switch engines.
SWITCH_MARGIN = 1.05
# The batch sizes auto times each engine at: a lone request, and a full micro-batch.
PROBE_SIZES = (1, 1024)
PROBE_SECONDS = 0.15  # per engine and size: ~1 s per model at start-up


class Session(Protocol):
    """What the engine runs a graph through (onnxruntime's InferenceSession has it all)."""

    def run(self, output_names: Optional[list[str]], feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...
    def get_inputs(self) -> list: ...
    def get_outputs(self) -> list: ...
    def get_providers(self) -> list[str]: ...


class Backend(Protocol):
    name: str

    def available(self) -> bool:
        """Installed and importable here."""

    def runs_on(self, providers: list[str]) -> bool:
        """Can serve with these execution providers (the engine's, from runtime/providers.py)."""

    def open(self, path: Path, threads: int, providers: list[str], names: tuple[str, ...]) -> Session:
        """The graph at `path`, ready to run on `threads` threads. `names`: the tensor names the
        card expects, for a backend that may rename tensors."""


class OnnxRuntime:
    name = ONNXRUNTIME

    def available(self) -> bool:
        return True  # a dependency of the service

    def runs_on(self, providers: list[str]) -> bool:
        return True

    def open(self, path: Path, threads: int, providers: list[str], names: tuple[str, ...]) -> Session:
        import onnxruntime as ort

        from service.runtime.providers import serving_options

        return ort.InferenceSession(str(path), serving_options(threads), providers=providers)


class OpenVino:
    name = OPENVINO
    install_hint = "pip install 'ganserve[openvino]'"

    def available(self) -> bool:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return False
        return True

    def runs_on(self, providers: list[str]) -> bool:
        return providers == [CPU_PROVIDER]  # the CPU only: CUDA is onnxruntime's

    def open(self, path: Path, threads: int, providers: list[str], names: tuple[str, ...]) -> Session:
        return OpenVinoSession(path, threads, names)


BACKENDS: dict[str, Backend] = {b.name: b for b in (OnnxRuntime(), OpenVino())}
DEFAULT = ONNXRUNTIME  # what auto keeps on a tie, and what the library's Engine uses
NAMES: tuple[str, ...] = tuple(BACKENDS)


class BackendError(ValueError):
    """A backend asked for that cannot serve here (not installed, or not on this device)."""


def get(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(f"backend={name} is unknown (known: auto, {', '.join(NAMES)})") from None


def check(name: str, device: str) -> None:
    """Refuse a backend that cannot serve on `device` before anything loads."""
    if name == "auto":
        return
    backend = get(name)
    if not backend.available():
        hint = getattr(backend, "install_hint", "")
        raise BackendError(f"backend={name} but the {name} runtime is not installed" + (f" ({hint})" if hint else ""))
    if device == "cuda" and not backend.runs_on(["CUDAExecutionProvider", CPU_PROVIDER]):
        raise BackendError(f"backend={name} runs on the CPU only; device=cuda needs backend={DEFAULT} or auto")


def runnable(providers: list[str]) -> list[str]:
    """The installed backends that can serve with these providers, the default first."""
    return [name for name, b in BACKENDS.items() if b.available() and b.runs_on(providers)]


def splits(name: str, providers: list[str]) -> bool:
    """Whether `name`'s sessions on these providers split large runs by rows (SplitRuns):
    onnxruntime on the CPU. OpenVINO keeps its own threads; on CUDA one run fills the device."""
    return name == ONNXRUNTIME and providers == [CPU_PROVIDER]


def openvino_available() -> bool:
    return BACKENDS[OPENVINO].available()


@dataclass(frozen=True)
class _Arg:
    """An input or output as onnxruntime describes it (name, 'tensor(float)', shape with names)."""

    name: str
    type: str
    shape: list


_OV_TYPES = {"f32": "tensor(float)", "i64": "tensor(int64)"}


class OpenVinoSession:
    """A graph compiled by OpenVINO for the CPU, run like an onnxruntime session. Thread-safe:
    each thread runs its own infer request (a compiled model's requests share its weights)."""

    def __init__(self, path: Path, threads: int, names: tuple[str, ...] = ()):
        """`names`: the tensor names the caller expects (the card's). OpenVINO may give a tensor
        several names (one per ONNX value it fused), so where one of them is expected, that one
        is reported; a graph without it still fails the card's check."""
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        # f32 always: on AVX-512/AMX hosts OpenVINO's default precision may be bf16, whose
        # samples would differ from onnxruntime's by far more than float tolerance (STACK.md).
        self._compiled = core.compile_model(
            model,
            "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
        )
        self._local = threading.local()
        self._inputs = [self._describe(p, names) for p in self._compiled.inputs]
        self._outputs = [self._describe(p, names) for p in self._compiled.outputs]

    @staticmethod
    def _describe(port, expected: tuple[str, ...]) -> _Arg:
        shape = [d.get_length() if d.is_static else "batch" for d in port.get_partial_shape()]
        etype = port.get_element_type().get_type_name()
        known = port.get_names()
        name = next((n for n in expected if n in known), None) or port.get_any_name()
        return _Arg(name, _OV_TYPES.get(etype, f"tensor({etype})"), shape)

    def get_inputs(self) -> list[_Arg]:
        return self._inputs

    def get_outputs(self) -> list[_Arg]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return [OPENVINO_CPU]

    def run(self, output_names: Optional[list[str]], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        # share_outputs=False (the default): each answer owns its arrays, as onnxruntime's do.
        result = request.infer(feeds)
        names = output_names or [o.name for o in self._outputs]
        return [result[self._compiled.output(name)] for name in names]


class Splitter:
    """The helper threads an engine's split runs share (`SplitRuns`): `parts - 1` of them, each
    running one slice of a run while the caller runs another. A run splits only into the helpers
    free when it starts: under concurrent runs (busy workers) each run keeps to its caller's thread
    and nothing waits on a helper, so the cores are never asked for more than `parts` graph threads
    by a worker's split runs."""

    def __init__(self, parts: int, min_rows: int):
        self.parts, self.min_rows = parts, min_rows
        self._free = threading.BoundedSemaphore(parts - 1)
        self._pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="ganserve-split")

    def helpers(self) -> int:
        """Takes as many free helpers as a run may use (up to parts - 1); give them back with `release`."""
        taken = 0
        while taken < self.parts - 1 and self._free.acquire(blocking=False):
            taken += 1
        return taken

    def release(self, taken: int) -> None:
        for _ in range(taken):
            self._free.release()

    def submit(self, fn: Callable, *args):
        return self._pool.submit(fn, *args)

    def describe(self) -> str:
        return f"runs of >= {self.min_rows} rows split over {self.parts} one-thread runs at once"


class SplitRuns:
    """A sampling graph opened twice by onnxruntime on the CPU: `whole`, on the worker's graph
    threads, runs what is smaller than `splitter.min_rows` rows exactly as an unsplit engine does;
    `one`, on one intra-op thread, runs larger runs split by rows into slices at once, the caller's
    thread running one and the splitter's free helpers the others (one InferenceSession may be run
    from several threads; its Run releases the GIL). A large run that finds no helper free (the
    worker already busy with another) runs whole on `one`, on the caller's thread. Per-core data
    parallelism inside one worker instead of intra-op threading, where rows are many: on a 2-core
    AVX-512 host two concurrent 1-thread halves of n = 1024 ran 1.09-1.11x one 2-thread run at
    0.90-0.92x its CPU; at 32-64 rows they tie, at 16 they ran 0.70x (intra-op threads share one
    read of the weights), hence the two sessions (bench/split_run.py, docs/PERFORMANCE.md#finding-split-run).
    The answers are the same bit for bit: a G maps each row on its own (the micro-batchers already
    rely on it) and each slice's rows take the same kernels as in one run
    (tests/service/runtime/test_split_runs.py). Runs whose inputs do not all share their first
    dimension run on `whole`."""

    def __init__(self, whole, one, splitter: Splitter):
        self.whole, self.one, self.splitter = whole, one, splitter

    def __getattr__(self, name: str):  # get_inputs, get_outputs, get_providers, ...: the session's own
        return getattr(self.whole, name)

    def run(self, output_names: Optional[list[str]], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows = {len(a) if getattr(a, "ndim", 0) else -1 for a in feeds.values()}
        n = next(iter(rows)) if len(rows) == 1 else -1
        if n < max(self.splitter.min_rows, 2):
            return self.whole.run(output_names, feeds)
        taken = self.splitter.helpers()
        if not taken:
            return self.one.run(output_names, feeds)
        try:
            parts = taken + 1
            edges = [n * i // parts for i in range(parts + 1)]
            slices = [{k: a[lo:hi] for k, a in feeds.items()} for lo, hi in zip(edges, edges[1:])]
            others = [self.splitter.submit(self.one.run, output_names, f) for f in slices[1:]]
            try:
                mine = self.one.run(output_names, slices[0])
            finally:
                wait(others)  # every slice done before the helpers go back
            results = [f.result() for f in others]
        finally:
            self.splitter.release(taken)
        return [np.concatenate([mine[i], *(r[i] for r in results)]) for i in range(len(mine))]


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str
    samples_per_s: dict  # {backend: {n: samples/s}} as measured; empty when nothing was timed


def measured_rate(run: Callable[[], object], n: int) -> float:
    """Samples per second of `run` (n samples a call) over PROBE_SECONDS, after one planning run."""
    run()  # the first run of a shape pays for planning, in every engine
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < PROBE_SECONDS:
        run()
        calls += 1
    return n * calls / (time.perf_counter() - start)


def choose(
    wanted: str,
    sessions: dict[str, object],
    feeds_for: Callable[[int], dict],
    rate: Callable[[Callable[[], object], int], float] = measured_rate,
) -> Choice:
    """`wanted`: auto or a backend's name. `sessions`: the generator graph opened by each runnable
    backend, the default first; `feeds_for(n)`: the generator's inputs for n samples. auto times
    each at PROBE_SIZES (`rate`, injectable so a test decides nothing by the wall clock) and keeps
    the default unless another is faster by SWITCH_MARGIN on the geometric mean of the two sizes'
    rates; the fastest such wins."""
    if wanted != "auto" or len(sessions) == 1:
        backend = wanted if wanted != "auto" else next(iter(sessions))
        why = f"backend={wanted}" if wanted != "auto" else f"backend=auto: only {backend} can run here"
        return Choice(backend, why, {})
    rates = {
        name: {n: rate(lambda s=s, f=feeds_for(n): s.run(None, f), n) for n in PROBE_SIZES}
        for name, s in sessions.items()
    }
    default = DEFAULT if DEFAULT in sessions else next(iter(sessions))
    speedups = {
        name: float(np.sqrt(np.prod([rates[name][n] / rates[default][n] for n in PROBE_SIZES])))
        for name in sessions
        if name != default
    }
    best, speedup = max(speedups.items(), key=lambda kv: kv[1])
    figures = ", ".join(
        f"n={n}: {best} {rates[best][n]:,.0f} vs {default} {rates[default][n]:,.0f} samples/s" for n in PROBE_SIZES
    )
    backend = best if speedup > SWITCH_MARGIN else default
    verdict = "faster" if backend == best else f"not faster by {SWITCH_MARGIN - 1:.0%}"
    return Choice(backend, f"backend=auto: {best} {speedup:.2f}x ({verdict}; {figures})", rates)
