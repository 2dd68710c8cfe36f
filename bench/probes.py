"""The measurements of bench/serve.py beyond the load grid: HTTP floors, the micro-batcher's effect
(batching on vs off when the service has that setting, and a threads sweep), and the memory soak."""

from __future__ import annotations

import time
from pathlib import Path

from load import Result, run_wrk, settle
from servers import MemorySampler, Server, cpu_seconds, start_ganserve
from tqdm import tqdm

SMALL_CONNECTIONS = 64  # the n = 1 point
BATCHING_SETTING = "micro_batching"  # GANSERVE_MICRO_BATCHING in service/settings.py, when present
THREAD_SWEEP = (1, 4)  # beside the default (16); they bound requests served in threads (large or filtered ones)
BATCHING_ROUNDS = 3  # every variant's server is up at once and measured in turn, round after round
# One soak piece: the same three loads each time, so RSS after each piece compares like with like.
SOAK_PIECE = (
    ({"n": 1, "format": "json"}, 64, 5),
    ({"n": 64, "format": "npy"}, 8, 5),
    ({"n": 1024, "format": "npy"}, 4, 10),
)


def measured(server: Server, path: str, c: int, seconds: float, body: dict | None) -> tuple[Result, float | None]:
    """One wrk run, and the server's CPU milliseconds per answered request during it."""
    before = cpu_seconds(server)
    r = run_wrk(server.url + path, c, seconds, body)
    after = cpu_seconds(server)
    done = r.answered or r.requests
    return r, (1000 * (after - before) / done if before is not None and done else None)


def _row(r: Result, cpu_ms: float | None, count_4xx: bool = False) -> dict:
    d = {**r.as_dict(), "server_cpu_ms": cpu_ms}
    if count_4xx:  # a floor made of rejected requests: every answer counts
        d["rps"] = r.answered / r.seconds if r.seconds else 0.0
    return d


def floors(server: Server, model: str | None, seconds: float) -> dict:
    """At c = 64: GET /livez (the server's floor), POST /sample with n = 0 (the API route's floor:
    parsed and rejected with a 400, no model work), and n = 1 npy, the point they judge."""
    extra = {"model": model} if model else {}
    out = {}
    r, cpu = measured(server, "/livez", SMALL_CONNECTIONS, seconds, None)
    out["livez"] = _row(r, cpu)
    r, cpu = measured(server, "/sample", SMALL_CONNECTIONS, seconds, {"n": 0, "format": "npy", **extra})
    out["route"] = _row(r, cpu, count_4xx=True)
    body = {"n": 1, "seed": 1, "format": "npy", **extra}
    r, cpu = measured(server, "/sample", SMALL_CONNECTIONS, seconds, body)
    settle(server.url + "/sample", body)
    out["n1"] = _row(r, cpu)
    return out


def batching_variants(
    models_dir: Path, scratch: Path, model: str, seconds: float, rounds: int = BATCHING_ROUNDS, sweep: bool = True
) -> dict:
    """n = 1 npy at c = 64: micro-batching on and off (GANSERVE_MICRO_BATCHING=false) at the
    service's default thread count, and (sweep) other thread counts with batching on (the
    thread count bounds the requests served in threads; small ones are batched on the event loop
    since 174c419, whatever the thread count).

    Every variant's server is started first, then each is measured in turn for `rounds` rounds,
    so the other work on shared cores falls on all of them alike; per variant: the median run
    (by req/s) and every round's req/s and p99."""
    from service.settings import Settings

    default_threads = Settings.model_fields["threads"].default
    variants = {f"batching on, threads={default_threads} (default)": {}}
    if BATCHING_SETTING in Settings.model_fields:
        variants[f"batching off, threads={default_threads}"] = {f"GANSERVE_{BATCHING_SETTING.upper()}": "false"}
    else:
        tqdm.write(f"batching off: not measured, service/settings.py has no `{BATCHING_SETTING}` setting")
    if sweep:
        variants.update(
            {f"batching on, threads={t}": {"GANSERVE_THREADS": str(t)} for t in THREAD_SWEEP if t != default_threads}
        )
    body = {"n": 1, "seed": 1, "format": "npy", "model": model}
    servers, runs = {}, {name: [] for name in variants}
    try:
        for i, (name, env) in enumerate(tqdm(variants.items(), desc="batching variants: start", unit="server")):
            servers[name] = start_ganserve(models_dir, scratch, env, name=f"batching-variant-{i}")
            settle(servers[name].url + "/sample", body)  # warm
        with tqdm(total=rounds * len(servers), desc="batching variants", unit="run") as bar:
            for _ in range(rounds):
                for name, server in servers.items():
                    r, cpu = measured(server, "/sample", SMALL_CONNECTIONS, seconds, body)
                    settle(server.url + "/sample", body)
                    runs[name].append(_row(r, cpu))
                    bar.update()
    finally:
        for server in servers.values():
            server.stop()
    out = {}
    for name, rows in runs.items():
        median = sorted(rows, key=lambda d: d["rps"])[len(rows) // 2]
        out[name] = {
            **median,
            "rounds": [{k: d[k] for k in ("rps", "p50_ms", "p99_ms", "server_cpu_ms", "errors")} for d in rows],
        }
    return out


def soak(server: Server, sampler: MemorySampler, model: str, minutes: float) -> list[float]:
    """Repeat identical pieces of mixed load for `minutes`; the workers' RSS (MB) after each."""
    series, end = [], time.monotonic() + 60 * minutes
    piece_s = sum(s for _, _, s in SOAK_PIECE)
    with tqdm(total=max(1, round(60 * minutes / piece_s)), desc="soak", unit="piece") as bar:
        while time.monotonic() < end:
            for body, c, seconds in SOAK_PIECE:
                body = {**body, "seed": len(series), "model": model}
                run_wrk(server.url + "/sample", c, seconds, body)
                settle(server.url + "/sample", {**body, "n": 1})
            series.append(sum(mb for k, mb in sampler.sample().items() if k.startswith("worker")))
            bar.update()
    return series
