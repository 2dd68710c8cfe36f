"""Memory that comes back after a burst: the worker's RSS after start-up, at the peak of a burst of
large answers, and over a minute idle afterwards, for several allocator settings (service/runtime/memory.py).

    .venv/bin/python bench/memory_soak.py                     # every variant, ~8 minutes
    .venv/bin/python bench/memory_soak.py --variants shipped --idle 30

Burst: n = 4096 MNIST samples as JSON (28.5 MB answers) at 16 connections for --burst seconds
(wrk), then nothing for --idle seconds. Variants: glibc's defaults with and without malloc_trim on
idle, the allocator environment with and without the trim (onnxruntime's CPU arena on in these),
and what is shipped (all of it, the arena off); each with admission control at its default, plus
two with GANSERVE_ADMISSION_BYTES=0 (the unbounded burst of issue #20: on a loaded machine its
abandoned requests run on long after wrk stops, so its idle figures are not an idle worker's). Goal: idle RSS within 20% of the post-start-up RSS within a minute.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from load import run_wrk, settle  # noqa: E402
from request_memory import host  # noqa: E402
from servers import REPO, MemorySampler, bentoml_serve_command, free_port, spawn, wait_ready  # noqa: E402

from service.runtime.memory import ALLOCATOR_ENV  # noqa: E402

ARENA_ON = {"GANSERVE_ORT_CPU_ARENA": "true"}
VARIANTS = {  # name -> (allocator environment, GANSERVE_* settings)
    "glibc defaults": ({}, {"GANSERVE_MALLOC_TRIM": "false", **ARENA_ON}),
    "glibc + trim on idle": ({}, {"GANSERVE_MALLOC_TRIM": "true", **ARENA_ON}),
    "allocator env only": (ALLOCATOR_ENV, {"GANSERVE_MALLOC_TRIM": "false", **ARENA_ON}),
    "allocator env + trim": (ALLOCATOR_ENV, {"GANSERVE_MALLOC_TRIM": "true", **ARENA_ON}),
    "shipped (+ onnxruntime arena off)": (ALLOCATOR_ENV, {"GANSERVE_MALLOC_TRIM": "true"}),
    "glibc defaults, no admission": (
        {},
        {"GANSERVE_MALLOC_TRIM": "false", "GANSERVE_ADMISSION_BYTES": "0", **ARENA_ON},
    ),
    "shipped, no admission": (ALLOCATOR_ENV, {"GANSERVE_MALLOC_TRIM": "true", "GANSERVE_ADMISSION_BYTES": "0"}),
}
BODY = {"n": 4096, "format": "json", "seed": 1}


def start(models_dir: Path, log_dir: Path, allocator: dict, settings: dict):
    import os

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GANSERVE_", "MALLOC_", "PROMETHEUS_"))}
    env.update(
        {
            "GANSERVE_MODELS_DIR": str(models_dir.resolve()),
            "GANSERVE_DEVICE": "cpu",
            "GANSERVE_ACCESS_LOG": "false",
            "BENTOML_DO_NOT_TRACK": "true",
            **allocator,
            **settings,
        }
    )
    command = bentoml_serve_command(port)
    server = spawn("soak", command, env, port, log_dir)
    wait_ready(server, "/readyz", 240)
    return server


def worker_mb(sampler: MemorySampler) -> float:
    return sum(mb for k, mb in sampler.sample().items() if k.startswith("worker"))


def burst_then_idle(
    server, sampler: MemorySampler, model: str | None = None, burst_s: float = 15, idle_s: float = 60
) -> dict:
    """The workers' RSS before, at the peak of a burst of n = 4096 json answers at c = 16, and
    every 10 s of the idle minute after it (also bench/serve.py's soak)."""
    body = {**BODY, **({"model": model} if model else {})}
    settle(server.url + "/sample", {**body, "n": 1})
    started = worker_mb(sampler)
    sampler.peak_mb.clear()
    result = run_wrk(server.url + "/sample", 16, burst_s, body, timeout_s=120)
    settle(server.url + "/sample", {**body, "n": 1})
    peak = max(mb for k, mb in sampler.sample().items() if k.startswith("worker"))
    peak = max([peak] + [mb for k, mb in sampler.peak_mb.items() if k.startswith("worker")])
    idle = []
    end = time.monotonic() + idle_s
    while time.monotonic() < end:
        time.sleep(min(10, idle_s))
        idle.append(round(worker_mb(sampler)))
    return {
        "start_mb": round(started),
        "peak_mb": round(peak),
        "idle_mb": idle,
        "ok": result.requests,
        "refused_or_errors": result.errors,
        "within_20pct": idle[-1] <= 1.2 * started,
    }


def run(name: str, models_dir: Path, burst_s: float, idle_s: float, log_dir: Path) -> dict:
    allocator, settings = VARIANTS[name]
    server = start(models_dir, log_dir, allocator, settings)
    try:
        with MemorySampler(server, interval_s=0.1) as sampler:
            return {"variant": name, **burst_then_idle(server, sampler, None, burst_s, idle_s)}
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    p.add_argument("--burst", type=float, default=15)
    p.add_argument("--idle", type=float, default=60)
    args = p.parse_args()
    print(f"host: {host()}")
    log_dir = Path(tempfile.mkdtemp(prefix="ganserve-soak-"))
    for name in args.variants:
        r = run(name, args.models_dir, args.burst, args.idle, log_dir)
        print(
            f"{r['variant']:<32} start {r['start_mb']:>5} MB  peak {r['peak_mb']:>5} MB  idle every 10 s "
            f"{r['idle_mb']} MB  ({r['ok']} answered, {r['refused_or_errors']} refused/errors)  "
            f"{'within' if r['within_20pct'] else 'NOT within'} 20% of start",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
