"""What a bench run records about where it ran, beside its figures: the host (CPU model, cores,
vector extensions), the layout the service picks on it, the engine and provider the server really
serves with, and the limits it is measured against (bench/raw_engine.py in a fresh process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from host import cpu as host_cpu
from report import layout_counts
from servers import REPO, Server


def service_layout() -> tuple[int, int, str]:
    """(workers, graph threads per worker, why) the service chooses on this host with this
    environment (GANSERVE_WORKERS included): the servers the bench starts take the same."""
    from service.settings import SettingsError, load_settings

    try:
        return load_settings().layout()
    except SettingsError as e:
        raise SystemExit(f"error: {e}") from None


def raw_limits(models_dir: Path, model: str, sizes: list[int], seconds: float, threads: int) -> dict[int, dict]:
    """Per n, raw_engine's row (samples/s `ort`, `ort_cpu_ms`), in a fresh process, with the
    service's intra-op thread count per worker."""
    command = [
        sys.executable,
        str(REPO / "bench" / "raw_engine.py"),
        "--models-dir",
        str(models_dir),
        "--model",
        model,
        "--seconds",
        str(seconds),
        "--threads",
        str(threads),
        "--no-stages",
        "--json",
        "--n",
        *map(str, sizes),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return {int(n): row for n, row in json.loads(out.stdout)["samples_per_s"].items()}


def compare_limits(models_dir: Path, model: str, sizes: list[int], seconds: float, when: str) -> dict:
    """`raw_engine.py --compare --json` in a fresh process, on all the cores: every engine
    (onnxruntime, OpenVINO, torch) as one session on all cores and as one single-threaded session
    per core, with the host and its sgemm peak. The best of them is the limit of "x best"."""
    from service.settings import cpu_count

    print(f"the limit over engines and layouts, {when} the load ...", flush=True)
    command = [
        sys.executable,
        str(REPO / "bench" / "raw_engine.py"),
        "--compare",
        "--json",
        "--models-dir",
        str(models_dir),
        "--model",
        model,
        "--seconds",
        str(seconds),
        "--threads",
        str(cpu_count()),
        "--n",
        *map(str, sizes),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)


def served_on(server: Server, model: str) -> dict:
    """The provider and backend the server really runs the model on, why that backend, its device
    note and its layout (workers, graph threads), from GET /models (the server reports
    `session.get_providers()`, not what was asked for: ../shared/STACK.md)."""
    import httpx

    listed = httpx.get(server.url + "/models", timeout=30).raise_for_status().json()
    entry = next((m for m in listed["models"] if m["name"] == model), {})
    workers, threads = layout_counts(listed.get("layout") or "")
    return {
        "device": listed.get("device"),
        "provider": entry.get("provider", f"not served ({entry.get('reason')})"),
        "backend": entry.get("backend"),
        "backend_reason": entry.get("backend_reason"),
        "layout": listed.get("layout"),
        "workers": workers,
        "graph_threads": threads,
    }


def machine() -> dict:
    """The host (CPU model, cores, vector extensions: bench/host.py), the layout the service picks
    on it, and the commit measured."""
    import platform

    info = host_cpu()
    workers, threads, why = service_layout()
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=REPO, check=False
    )
    return {
        "cpu": info["model"],
        "cores": info["cores"],
        "vector": info["vector"],
        "load_avg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "workers": workers,
        "graph_threads": threads,
        "layout": why,
        "threads": os.environ.get("GANSERVE_THREADS", "default"),
        "backend": os.environ.get("GANSERVE_BACKEND", "auto"),
        "commit": commit.stdout.strip() or "unknown",
        "time": time.strftime("%Y-%m-%d %H:%M"),
    }
