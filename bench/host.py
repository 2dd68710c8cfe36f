"""The host a figure was measured on, and its physical limit: CPU model, the vector extensions that
decide which kernels the engines run (AVX2, AVX-512, AMX), cores, and the sgemm peak measured with
torch (MKL or OpenBLAS, whatever torch ships), so samples/s read as a share of what the machine can
do. Every bench script prints `describe()` beside its figures (docs/PERFORMANCE.md#hosts names
each host; every run in docs/perf-log/ starts with its host).

    .venv/bin/python bench/host.py            # prints the host and its sgemm peak
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

# The extensions that change which kernels onnxruntime, OpenVINO and MKL pick, in /proc/cpuinfo's names.
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu() -> dict:
    """CPU model, cores this process may use, and the vector extensions present."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "vector": [f for f in VECTOR_FLAGS if f in flags]}


def sgemm_peak(threads: int, size: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of float32 matrix products of `size` squared on `threads` threads (torch's BLAS):
    the most any engine can get out of these cores for a dense layer."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)  # warm-up: thread pool, packing buffers
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < seconds:
            torch.mm(a, b)
            calls += 1
        return 2 * size**3 * calls / (time.perf_counter() - start) / 1e9
    finally:
        torch.set_num_threads(before)


def load_average() -> float:
    """The 1-minute load average: figures taken while other work ran are worth less (say so)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def describe() -> str:
    info = cpu()
    return (
        f"{info['model']}, {info['cores']} cores, {'/'.join(info['vector']) or 'no AVX'}; "
        f"load average {load_average():.2f}"
    )


if __name__ == "__main__":
    info = cpu()
    info["sgemm_gflops"] = {t: round(sgemm_peak(t), 1) for t in sorted({1, info["cores"]})}
    info["load_average"] = load_average()
    print(
        json.dumps(info)
        if "--json" in sys.argv
        else f"{describe()}\nsgemm peak (torch): "
        + ", ".join(f"{t} thread(s) {g} GFLOP/s" for t, g in info["sgemm_gflops"].items())
    )
