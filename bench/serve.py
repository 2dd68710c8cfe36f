"""ganserve under load, against its limit and against a hand-written server, in one run.

    .venv/bin/python bench/serve.py                      # full run, a few minutes (figures for docs)
    .venv/bin/python bench/serve.py --seconds 2 --quick  # smoke run while developing
    .venv/bin/python bench/serve.py --url http://gpu-host:3000 --raw-json raw.json   # a remote server

It starts the real server (`bentoml serve`, as `python -m service serve` does) on 127.0.0.1 and the
baseline (bench/baseline_torch_server.py), drives both with `wrk` at several concurrencies, request
sizes (n = 1, 64, 1024) and formats (json, npy, png), and prints samples/s, p50/p99 latency, errors,
and ratios: to the raw onnxruntime throughput of the same n (bench/raw_engine.py, measured before
and after the load in this run), and to the baseline. Then: the HTTP floor (GET /livez at c = 64),
micro-batching off (when the service has the setting), peak RSS per process, and a soak that checks
the workers' memory stays flat. Without trained `models/`, it exports untrained stand-ins of the
four default models into /tmp (bench/stand_in_models.py): same graphs, same cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from load import LoadError, Result, require_wrk, run_wrk, settle  # noqa: E402
from report import print_grid, print_summary  # noqa: E402
from servers import REPO, MemorySampler, Server, ServerError, start_baseline, start_ganserve  # noqa: E402

SCRATCH = Path("/tmp/ganserve-bench")
# Concurrencies per request size: n = 1024 json takes ~0.5 s a request, c = 64 would only queue.
CONCURRENCY = {1: (1, 8, 64), 64: (1, 8, 64), 1024: (1, 4, 8)}
# wrk drops the requests still in flight when its time is up: up to c / 2 requests' worth. Bulk
# requests run longer so that this stays a few percent of the count.
LONGER_FROM_N, LONGER_FACTOR = 1024, 3
FLOOR_CONNECTIONS = 64
BATCHING_SETTING = "micro_batching"  # GANSERVE_MICRO_BATCHING in service/settings.py, when present


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, help="default: models/ when it holds the model, else stand-ins in /tmp")
    p.add_argument("--model", default="mnist")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    p.add_argument("--formats", nargs="+", default=["json", "npy", "png"], choices=["json", "npy", "png"])
    p.add_argument("--concurrency", type=int, nargs="+", help="the same concurrencies for every n (default: per n)")
    p.add_argument("--seconds", type=float, default=8.0, help="per load point")
    p.add_argument("--quick", action="store_true", help="one concurrency per n, no soak (for debugging the harness)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--soak-minutes", type=float, default=3.0, help="0 to skip")
    p.add_argument("--url", help="measure a running server there instead of starting one (no memory figures)")
    p.add_argument("--baseline-url", help="with --url: a running baseline server to compare against")
    p.add_argument("--raw-json", type=Path, help="raw limits from `bench/raw_engine.py --json` (with --url: run it there)")
    p.add_argument("--out", type=Path, help="also write every figure as JSON here")
    return p.parse_args()


def models_dir_for(args: argparse.Namespace) -> Path:
    if args.models_dir is not None:
        return args.models_dir
    if (REPO / "models" / args.model / "model.json").is_file():
        return REPO / "models"
    from stand_in_models import ensure_stand_ins

    return ensure_stand_ins(SCRATCH / "models")


def service_workers() -> int:
    return int(os.environ.get("GANSERVE_WORKERS", "1"))


def raw_limits(models_dir: Path, model: str, sizes: list[int], seconds: float) -> dict[int, float]:
    """samples/s of session.run alone per n, in a fresh process, with the service's thread count."""
    from service.settings import cpu_count

    threads = max(1, cpu_count() // service_workers())
    command = [sys.executable, str(REPO / "bench" / "raw_engine.py"), "--models-dir", str(models_dir), "--model", model,
               "--seconds", str(seconds), "--threads", str(threads), "--no-stages", "--json", "--n", *map(str, sizes)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return {int(n): row["ort"] for n, row in json.loads(out.stdout)["samples_per_s"].items()}


def read_raw(path: Path) -> dict[int, float]:
    return {int(n): row["ort"] for n, row in json.loads(path.read_text())["samples_per_s"].items()}


def load_points(args: argparse.Namespace) -> list[tuple[int, str, int]]:
    points = []
    for n in args.sizes:
        levels = args.concurrency or CONCURRENCY.get(n, (1, 8, 64))
        levels = levels[-1:] if args.quick else levels
        points += [(n, fmt, c) for fmt in args.formats for c in levels]
    return points


def drive(server: Server, model: str | None, points, seconds: float, bar: tqdm) -> list[dict]:
    rows = []
    for n, fmt, c in points:
        body = {"n": n, "seed": 1, "format": fmt, **({"model": model} if model else {})}
        bar.set_postfix_str(f"{server.name} n={n} {fmt} c={c}")
        try:
            r = run_wrk(server.url + "/sample", c, seconds * (LONGER_FACTOR if n >= LONGER_FROM_N else 1), body)
            settle(server.url + "/sample", {**body, "n": 1})
        except LoadError as e:
            tqdm.write(f"  {server.name} n={n} {fmt} c={c}: {e}")
            r = Result(0, -1, seconds, 0, 0, 0)
        rows.append({"target": server.name, "n": n, "format": fmt, "c": c, "samples_per_s": r.rps * n, **r.as_dict()})
        bar.update()
    return rows


def soak(server: Server, sampler: MemorySampler, model: str, minutes: float) -> list[float]:
    """Alternate a small-request and a bulk load in 20 s pieces; the workers' RSS after each."""
    series, end = [], time.monotonic() + 60 * minutes
    mix = [({"n": 1, "seed": 1, "format": "json", "model": model}, 64), ({"n": 64, "seed": 2, "format": "npy", "model": model}, 8)]
    with tqdm(total=round(60 * minutes), desc="soak", unit="s") as bar:
        while time.monotonic() < end:
            start = time.monotonic()
            body, c = mix[len(series) % 2]
            run_wrk(server.url + "/sample", c, 20, body)
            series.append(sum(mb for k, mb in sampler.sample().items() if k.startswith("worker")))
            bar.update(round(time.monotonic() - start))
    return series


def main() -> int:
    args = parse_args()
    try:
        require_wrk()
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    SCRATCH.mkdir(parents=True, exist_ok=True)
    figures: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    started: list[Server] = []
    try:
        if args.url:
            servers = [Server("ganserve", args.url.rstrip("/"), None)]
            if args.baseline_url:
                servers.append(Server("baseline", args.baseline_url.rstrip("/"), None))
            models_dir = None
        else:
            models_dir = models_dir_for(args)
            print(f"models: {models_dir}; logs: {SCRATCH}", flush=True)
            servers = [start_ganserve(models_dir, SCRATCH, {})]
            started.append(servers[0])
            if not args.no_baseline:
                preset = json.loads((models_dir / args.model / "model.json").read_text())["training"]["preset"]
                servers.append(start_baseline(preset, SCRATCH))
                started.append(servers[-1])
        ganserve = servers[0]

        raw = read_raw(args.raw_json) if args.raw_json else None
        raw_before = raw_limits(models_dir, args.model, args.sizes, 3) if models_dir and not raw else None

        points = load_points(args)
        sampler = MemorySampler(ganserve)
        with sampler, tqdm(total=len(points) * len(servers) + 2 * len(servers), desc="load", unit="point") as bar:
            rows = drive(ganserve, args.model, points, args.seconds, bar)
            for other in servers[1:]:
                rows += drive(other, None, points, args.seconds, bar)
            floors = {}
            for s in servers:
                bar.set_postfix_str(f"{s.name} floor")
                floors[s.name] = run_wrk(s.url + "/livez", FLOOR_CONNECTIONS, args.seconds).as_dict()
                bar.update()
                body = {"n": 1, "seed": 1, "format": "npy", **({"model": args.model} if s is ganserve else {})}
                small = run_wrk(s.url + "/sample", FLOOR_CONNECTIONS, args.seconds, body)
                settle(s.url + "/sample", body)
                floors[s.name]["n1_c64_npy"] = small.as_dict()
                bar.update()
        figures.update(rows=rows, floors=floors, memory_peak_mb=sampler.peak_mb)

        raw_after = raw_limits(models_dir, args.model, args.sizes, 3) if raw_before else None
        if raw_before:
            raw = {n: (raw_before[n] + raw_after[n]) / 2 for n in raw_before}
            figures.update(raw_before=raw_before, raw_after=raw_after)
        figures["raw"] = {int(k): v for k, v in raw.items()} if raw else None

        if not args.url:
            figures["batching_off"] = batching_off(models_dir, args)
            if args.soak_minutes > 0 and not args.quick:
                figures["soak_worker_mb"] = soak(ganserve, sampler, args.model, args.soak_minutes)
    except (ServerError, LoadError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for s in started:
            s.stop()

    figures["machine"]["load_avg_at_end"] = os.getloadavg()
    print_grid(figures)
    print_summary(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
        print(f"figures written to {args.out}")
    return 0


def batching_off(models_dir: Path, args: argparse.Namespace) -> dict | None:
    """n = 1 at c = 64 on a second server started with the micro-batcher off, when that setting exists."""
    from service.settings import Settings

    if BATCHING_SETTING not in Settings.model_fields:
        print(f"batching off: not measured, service/settings.py has no `{BATCHING_SETTING}` setting", flush=True)
        return None
    server = start_ganserve(models_dir, SCRATCH, {f"GANSERVE_{BATCHING_SETTING.upper()}": "false"}, name="ganserve-unbatched")
    try:
        out = {}
        for fmt in ("json", "npy"):
            r = run_wrk(server.url + "/sample", FLOOR_CONNECTIONS, args.seconds, {"n": 1, "seed": 1, "format": fmt, "model": args.model})
            out[fmt] = r.as_dict()
        return out
    finally:
        server.stop()


def machine() -> dict:
    import platform

    from service.settings import cpu_count

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": cpu_count(), "load_avg_at_start": os.getloadavg(), "python": platform.python_version(),
            "workers": service_workers(), "time": time.strftime("%Y-%m-%d %H:%M")}


if __name__ == "__main__":
    sys.exit(main())
