"""The measurements of bench/serve.py beyond the load grid: HTTP floors, the micro-batcher's effect
(threads sweep, and batching off when the service has that setting), and the memory soak."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from load import Result, run_wrk, settle
from servers import MemorySampler, Server, cpu_seconds, start_ganserve

SMALL_CONNECTIONS = 64  # the issue's n = 1 point
BATCHING_SETTING = "micro_batching"  # GANSERVE_MICRO_BATCHING in service/settings.py, when present
THREAD_SWEEP = (1, 4, 16)  # 4: the default, again, beside the others; 1: the micro-batcher never sees two callers
# One soak piece: the same three loads each time, so RSS after each piece compares like with like.
SOAK_PIECE = (({"n": 1, "format": "json"}, 64, 5), ({"n": 64, "format": "npy"}, 8, 5), ({"n": 1024, "format": "npy"}, 4, 10))


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


def batching_variants(models_dir: Path, scratch: Path, model: str, seconds: float) -> dict:
    """n = 1 npy at c = 64 on servers started with other thread counts (the micro-batcher can
    only group the requests that BentoML's threads hand it at once), and with batching off."""
    from service.settings import Settings

    variants = {f"threads={t}": {"GANSERVE_THREADS": str(t)} for t in THREAD_SWEEP}
    if BATCHING_SETTING in Settings.model_fields:
        variants["batching off"] = {f"GANSERVE_{BATCHING_SETTING.upper()}": "false"}
    else:
        tqdm.write(f"batching off: not measured, service/settings.py has no `{BATCHING_SETTING}` setting")
    out = {}
    for name, env in tqdm(variants.items(), desc="batching variants", unit="server"):
        server = start_ganserve(models_dir, scratch, env, name=name.replace(" ", "-").replace("=", ""))
        try:
            body = {"n": 1, "seed": 1, "format": "npy", "model": model}
            settle(server.url + "/sample", body)  # warm
            r, cpu = measured(server, "/sample", SMALL_CONNECTIONS, seconds, body)
            out[name] = _row(r, cpu)
        finally:
            server.stop()
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
