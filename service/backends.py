"""The engines that can run a model's graphs on the CPU, and the choice between them per host.

onnxruntime runs every graph (and is the only one for CUDA); the OpenVINO runtime, when installed
(the `openvino` extra), reads the same ONNX files and was the faster CPU engine on some hosts
(issue 18: 38-39k samples/s against onnxruntime's 34k on an AVX-512 Xeon; on others they tie).
Which is faster depends on the host, so `backend=auto` measures both on the model's own shapes at
load time and serves with the faster one, saying why (`Choice.reason`, shown by GET /models).

`OpenVinoSession` wraps a compiled OpenVINO model in the part of onnxruntime's session interface
the engine uses (`run`, `get_inputs`, `get_outputs`, `get_providers`), so the engine's card
checks, warm-up and three ways to run a graph stay one code path for both.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

log = logging.getLogger("ganserve.backends")

ONNXRUNTIME, OPENVINO = "onnxruntime", "openvino"
OPENVINO_CPU = "OpenVINO:CPU"  # what get_providers() says for an OpenVINO session
# auto keeps onnxruntime (the tested default, and the CUDA path) unless OpenVINO is faster by more
# than this: a tie within timing noise is not a reason to switch engines.
SWITCH_MARGIN = 1.05
# The batch sizes auto times each engine at: a lone request, and a full micro-batch.
PROBE_SIZES = (1, 1024)
PROBE_SECONDS = 0.15  # per engine and size: ~1 s per model at start-up


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


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
        self._compiled = core.compile_model(model, "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
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


def _rate(run: Callable[[], object], n: int) -> float:
    run()  # the first run of a shape pays for planning, in both engines
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < PROBE_SECONDS:
        run()
        calls += 1
    return n * calls / (time.perf_counter() - start)


def choose(wanted: str, sessions: dict[str, object], feeds_for: Callable[[int], dict]) -> Choice:
    """`wanted`: auto, onnxruntime or openvino. `sessions`: the generator graph opened by each
    candidate engine; `feeds_for(n)`: the generator's inputs for n samples. auto times both at
    PROBE_SIZES and keeps onnxruntime unless OpenVINO is faster by SWITCH_MARGIN on the geometric
    mean of the two sizes' rates."""
    if wanted != "auto" or len(sessions) == 1:
        backend = wanted if wanted != "auto" else next(iter(sessions))
        why = f"backend={wanted}" if wanted != "auto" else f"backend=auto: only {backend} can run here"
        return Choice(backend, why, {})
    rates = {name: {n: _rate(lambda s=s, f=feeds_for(n): s.run(None, f), n) for n in PROBE_SIZES}
             for name, s in sessions.items()}
    speedup = float(np.sqrt(np.prod([rates[OPENVINO][n] / rates[ONNXRUNTIME][n] for n in PROBE_SIZES])))
    figures = ", ".join(f"n={n}: {OPENVINO} {rates[OPENVINO][n]:,.0f} vs {ONNXRUNTIME} {rates[ONNXRUNTIME][n]:,.0f} samples/s"
                        for n in PROBE_SIZES)
    backend = OPENVINO if speedup > SWITCH_MARGIN else ONNXRUNTIME
    verdict = "faster" if backend == OPENVINO else f"not faster by {SWITCH_MARGIN - 1:.0%}"
    return Choice(backend, f"backend=auto: {OPENVINO} {speedup:.2f}x ({verdict}; {figures})", rates)
