"""Which onnxruntime execution provider the graphs run on, as actually used.

onnxruntime-gpu lists CUDAExecutionProvider as available even on a machine with no GPU, and a
session asked for CUDA there logs an error and silently runs on the CPU (../shared/STACK.md).
So the only evidence trusted here is `session.get_providers()` of a session really created.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import onnxruntime as ort

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
log = logging.getLogger("ganserve.providers")


class DeviceError(RuntimeError):
    """`device=cuda` asked for where no CUDA device works."""


def session_options(intra_op_threads: int, quiet: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    # Requests already run on several threads; inter-op parallelism would oversubscribe cores.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if quiet:  # a CUDA probe that may fail: its failure is reported by us, not logged by onnxruntime
        options.log_severity_level = 4
    # onnxruntime's CPU arena keeps the largest activations a graph ever ran with for the life of
    # the session; off, they go back after each run and a worker's RSS comes back after a burst
    # (GANSERVE_ORT_CPU_ARENA, docs/PERFORMANCE.md#memory-after-burst).
    options.enable_cpu_mem_arena = _cpu_arena()
    return options


def serving_options(intra_op_threads: int) -> ort.SessionOptions:
    """The session options of every served graph: providers.session_options, with the intra-op
    threads' spin-waiting off. By default they spin between runs, waiting for the next one; in a
    server the next run waits on Python work (HTTP, encoding) that needs those same cores. Off,
    the server spends less CPU per request and graph runs beside other load go faster
    (docs/PERFORMANCE.md#finding-no-spinning)."""
    options = session_options(intra_op_threads, quiet=False)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _cpu_arena() -> bool:
    from service.settings import SettingsError, get_settings

    try:
        return get_settings().ort_cpu_arena
    except SettingsError:  # reported where the settings are read for real
        return False


def _preload_cuda_libraries() -> str:
    """Load CUDA/cuDNN from the pip wheels (the `cuda` extra) before the first CUDA session.
    Returns what onnxruntime printed about libraries it could not load (empty when all loaded)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            ort.preload_dlls()
        except Exception as e:  # a missing wheel is reported, not fatal: system CUDA may still work
            print(f"preload_dlls failed: {e}")
    return printed.getvalue().strip()


def _probe_cuda(graph: Path, intra_op_threads: int) -> tuple[bool, str]:
    """Open one real session on CUDA; True only when onnxruntime kept the CUDA provider."""
    if CUDA not in ort.get_available_providers():
        return False, "this onnxruntime build has no CUDA provider"
    preload_notes = _preload_cuda_libraries()
    try:
        session = ort.InferenceSession(str(graph), session_options(intra_op_threads, quiet=True), providers=[CUDA, CPU])
    except Exception as e:
        return False, f"creating a CUDA session failed: {e}"
    if session.get_providers()[0] == CUDA:
        return True, "CUDA provider in use"
    reason = "onnxruntime fell back to the CPU provider (no working CUDA device or libraries)"
    if preload_notes:
        reason += f"; {preload_notes.splitlines()[0]}"
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        reason += f"; CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r}"
    return False, reason


def choose_providers(device: str, probe_graph: Path, intra_op_threads: int) -> tuple[list[str], str]:
    """The provider list for every session, and a sentence saying why.

    auto: CUDA when a probe session really runs on it, else CPU. cpu: CPU. cuda: CUDA, or a
    DeviceError that says why it does not work here.
    """
    if device == "cpu":
        return [CPU], "device=cpu"
    if device == "auto" and not any(Path("/dev").glob("nvidia[0-9]*")):
        # No NVIDIA device node: skip the probe (and onnxruntime's noisy library errors).
        return [CPU], "device=auto: no NVIDIA device found, using the CPU"
    works, reason = _probe_cuda(probe_graph, intra_op_threads)
    if works:
        return [CUDA, CPU], f"device={device}: {reason}"
    if device == "cuda":
        raise DeviceError(f"GANSERVE_DEVICE=cuda but CUDA does not work here: {reason}")
    log.info("device=auto: using the CPU (%s)", reason)
    return [CPU], f"device=auto: using the CPU ({reason})"
