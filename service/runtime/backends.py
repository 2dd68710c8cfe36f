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
