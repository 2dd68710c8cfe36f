"""The service's settings: read once from the environment (prefix `GANSERVE_`) into one object.

Example: `GANSERVE_MODELS_DIR=/srv/models GANSERVE_DEVICE=cuda python -m service serve`.
A typo in a value (`GANSERVE_DEVICE=gpu`) is a startup error naming the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """An environment variable with a value the service cannot use."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GANSERVE_", extra="ignore", frozen=True)

    models_dir: Path = Path("models")
    # Used when a request names no model; when this model is absent, the only (or first, by
    # name) loaded model is the default instead.
    default_model: str = "mnist"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # The engine for the graphs on the CPU (service/runtime/backends.py): auto times onnxruntime and, when
    # installed, OpenVINO on each model at load and serves with the faster; CUDA is onnxruntime's.
    backend: Literal["auto", "onnxruntime", "openvino"] = "auto"
    max_n: int = Field(default=4096, ge=1, le=1_000_000)
    # 64 MiB: a 4096 x 784 float32 .npy is 12.8 MB, its JSON text about 4x that.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Optional bearer token for the API routes; /livez, /readyz and /metrics stay open.
    api_token: Optional[SecretStr] = None
    # A shared cache in front (nginx's, a CDN) whose cache key includes the Authorization header:
    # then fixed, pinned /sample answers are `public` even behind a token (http/caching.py);
    # otherwise they are `private`, so no shared cache hands one caller's answer to another.
    shared_cache_keys_token: bool = False
    # Worker processes; unset: chosen for the host (`layout`), as are the graph threads of each.
    workers: Optional[int] = Field(default=None, ge=1, le=64)
    # Graph (intra-op) threads per worker; unset: twice the worker's share of the cores, at most
    # all of them (`layout`).
    graph_threads: Optional[int] = Field(default=None, ge=1, le=256)
    # > 0: on the CPU with onnxruntime and 2+ graph threads, a run of a sampling graph (G) of at
    # least this many rows is split by rows into one one-thread run per graph thread, run at once
    # (runtime/backends.py SplitRuns): per-core data parallelism inside a worker instead of intra-op
    # threading, same answers bit for bit; smaller runs use the graph threads as before. Costs a
    # second session of each G (15 MB for mnist's). 0: every run on the graph threads
    # (docs/PERFORMANCE.md#finding-split-run).
    split_rows: int = Field(default=256, ge=0, le=1_000_000)
    # Requests served in threads at once per worker (BentoML's `threads`: /interpolate, and /sample
    # requests that are large or filtered), and the graph runs the event loop's small /sample
    # requests can have going at once; onnxruntime itself uses the layout's graph threads per run
    # (see runtime/engine.py). 16: more requests/s and less CPU per request than 4 when every
    # request ran in a thread (docs/PERFORMANCE.md#finding-request-threads). With micro-batching
    # on, a model's graph runs one batch at a time per front door (runtime/batching.py).
    threads: int = Field(default=16, ge=1, le=256)
    # Concurrent requests to one model share graph runs (batching.py); off, each runs alone.
    micro_batching: bool = True
    # Under load (the last run served several requests), the event loop's next run waits up to this
    # many ms for more (runtime/batching.py): more requests/s at n = 1 under load
    # (docs/PERFORMANCE.md#finding-batch-gather); 0: no wait at all.
    batch_gather_ms: float = Field(default=2.0, ge=0, le=50)
    # BentoML's access log: one INFO line per request. Off saves a little CPU on small requests
    # (docs/PERFORMANCE.md#finding-access-log); behind a proxy that logs requests itself
    # (deploy/nginx) it repeats it.
    access_log: bool = True
    # OpenTelemetry spans for every request, exported as BentoML's own config says (its
    # `services.ganserve.tracing`: exporter, sample rate). Off, no request gets a span: BentoML records
    # one per request even with no exporter and a sample rate of 0 (for the trace ids in its log
    # lines), and at n = 1 those spans were a large share of a request's CPU
    # (docs/PERFORMANCE.md#finding-tracing-spans). On, the graph routes add spans for their phases
    # (runtime/tracing.py: admission wait, batcher wait, graph run, encode, send).
    tracing: bool = False
    # > 0: unfiltered npy answers of at least twice this many samples are computed and sent in blocks
    # of this many rows, the graph running the next block while one is sent (core/streaming.py).
    # 0 (the default): computed whole, then sent. On the CPU hosts measured, blocks of 256 gained
    # nothing at n = 1024 (0.95x req/s at c = 1, 0.91x at c = 8: four runs cost more than one);
    # where the transfer is long beside the graph (a GPU) or memory is tight, they may pay
    # (docs/PERFORMANCE.md#finding-block-stream).
    stream_block_rows: int = Field(default=0, ge=0, le=1_000_000)
    # Rejection sampling (min_realness, drs) stops after drawing this many times n samples.
    max_draws_factor: int = Field(default=20, ge=1, le=1000)
    # Admission control (runtime/admission.py): the estimated peak bytes of the requests a worker
    # serves at once. 128 MiB: one n = 4096 MNIST json answer (charged 67.5 MB) with smaller ones,
    # three in npy; sized so that a worker with the shipped models stays under WORKER_MEMORY_GOAL
    # under load (docs/PERFORMANCE.md#memory-goal, #memory-hard-limit). 0: no bound. Past it, a
    # request waits in a queue of at most `admission_queue` for at most `admission_wait_s` seconds,
    # then is refused (503, Retry-After).
    admission_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
    admission_queue: int = Field(default=256, ge=0, le=100_000)
    admission_wait_s: float = Field(default=2.0, ge=0, le=600)
    # glibc's malloc_trim once a worker goes idle after large requests (runtime/memory.py): RSS
    # comes back after a burst (docs/PERFORMANCE.md#memory-after-burst).
    malloc_trim: bool = True
    # onnxruntime's CPU memory arena (runtime/providers.py): on, each graph keeps the largest
    # activations it ever ran with; off (the default), a worker's RSS comes back to its start-up
    # size after a burst, at no measurable cost in speed (bench/memory_soak.py;
    # docs/PERFORMANCE.md#memory-after-burst).
    ort_cpu_arena: bool = False
    # Where the `generate_dataset` task writes datasets (one folder per dataset name): a volume
    # the server owns. Unset: the task is refused (the server writes nowhere by default).
    output_dir: Optional[Path] = None
    # Models that change while serving (registry.py, Triton's modes): `none` (the models of
    # start-up), `poll` (the models dir rescanned every poll_interval_s seconds), `explicit`
    # (POST /v2/repository/models/{name}/load|unload; each worker follows the others every
    # poll_interval_s seconds through control_file, default one in the temp dir per server run).
    model_control: Literal["none", "poll", "explicit"] = "none"
    poll_interval_s: float = Field(default=5.0, ge=0.05, le=3600)
    control_file: Optional[Path] = None
    # A dataset job is refused, before it writes anything, when its estimated size (what is not
    # on disk yet) passes this many bytes; unset: dataset_disk_share of the output volume's free
    # space at submit. Checked again before each shard (datasets/limits.py).
    dataset_budget_bytes: Optional[int] = Field(default=None, ge=0)
    dataset_disk_share: float = Field(default=0.5, gt=0, le=1)
    # Dataset jobs the server runs at once, over all its workers; more are refused with 409
    # (datasets/slots.py: lock files under output_dir).
    dataset_jobs: int = Field(default=2, ge=1, le=64)
    # The playground page at /ui (service/http/ui/): off, the routes are not mounted at all.
    ui: bool = True

    @property
    def token_required(self) -> bool:
        """An empty GANSERVE_API_TOKEN (an env file's `GANSERVE_API_TOKEN=`) means no token."""
        return bool(self.api_token and self.api_token.get_secret_value())

    def layout(self) -> tuple[int, int, str]:
        """(workers, graph threads per worker, why): GANSERVE_WORKERS when set, else one worker per
        core on the CPU, capped so that every worker fits WORKER_MEMORY_GOAL in the memory the host
        has: a worker's Python (HTTP, encoding) runs between its graph runs, and a second worker
        fills those gaps (issue 18, docs/PERFORMANCE.md#finding-workers-per-core).
        Graph threads per worker: GANSERVE_GRAPH_THREADS when set, else twice the worker's share of
        the cores (at most all of them): a lone client's request then runs on every core, while
        busy workers oversubscribe the cores only twice over, which costs little
        (docs/PERFORMANCE.md#finding-graph-threads).
        The same on a GPU host: there the host side of each request (HTTP, latents, encoding), not
        the GPU, binds a worker (docs/PERFORMANCE.md#gpu-capacity-plan), and each worker's CUDA
        context is a small share of the device's memory."""
        cores = cpu_count()
        if self.workers is not None:
            workers, why = self.workers, f"GANSERVE_WORKERS={self.workers}"
        else:
            fit = max(1, available_memory() // WORKER_MEMORY_GOAL)
            workers = max(1, min(cores, fit, MAX_AUTO_WORKERS))
            why = (
                f"{workers} worker(s) for {cores} core(s) and {available_memory() / 2**30:.1f} GiB available "
                f"(one per core, at most {MAX_AUTO_WORKERS}, each within {WORKER_MEMORY_GOAL // 2**20} MiB)"
            )
        if self.graph_threads is not None:
            return workers, self.graph_threads, f"{why}; GANSERVE_GRAPH_THREADS={self.graph_threads}"
        return workers, min(cores, 2 * max(1, cores // workers)), why

    def limits(self) -> dict[str, int]:
        """The limits a client sizes its requests by, as `GET /models` reports them (the dataset
        CLI checks its block size against them and records the draw bound in its manifest)."""
        return {"max_n": self.max_n, "max_draws_factor": self.max_draws_factor, "max_body_bytes": self.max_body_bytes}


def load_settings() -> Settings:
    """Build the settings from the environment; a bad value raises SettingsError naming it."""
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(f"GANSERVE_{str(err['loc'][0]).upper()}: {err['msg']}" for err in e.errors())
        raise SettingsError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once (request schemas need max_n at
    import time, the service its paths at start-up: both see the same object)."""
    return load_settings()


WORKER_MEMORY_GOAL = 500 * 2**20  # a worker's resident memory should stay below it: docs/PERFORMANCE.md#memory-goal
MAX_AUTO_WORKERS = 16


def available_memory() -> int:
    """Bytes of memory this process may still use: the cgroup's limit (a container's) less its use
    when one is set, else the host's MemAvailable."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            return max(0, int(limit) - used)
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**32  # unknown: assume room for several workers


def cpu_count() -> int:
    """Cores this process may use (respects CPU affinity, e.g. under a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
