"""ganserve under load, against its limit and against a hand-written server, in one run.

    .venv/bin/python bench/serve.py --out /tmp/figures.json --markdown docs/perf-log
                                                         # full run, ~20 minutes: one section per host for the docs
    .venv/bin/python bench/serve.py --seconds 2 --quick  # smoke run while developing
    .venv/bin/python bench/serve.py --url http://gpu-host:3000 --raw-json raw.json   # a remote server
    .venv/bin/python bench/serve.py --only-batching      # micro-batching on vs off (and threads), ~3 min
    .venv/bin/python bench/serve.py --model patches --sizes 1 64 256 --formats npy png --quick --no-baseline
                                                         # the shipped RGB model (see also bench/png_rgb.py)

It starts the real server (`bentoml serve`, as `python -m service serve` does) on 127.0.0.1 and the
baseline (bench/baseline_torch_server.py), drives both with `wrk` at several concurrencies, request
sizes (n = 1, 64, 1024) and formats (json, npy, png), and prints samples/s, p50/p99 latency, errors,
the server's CPU ms per request, and ratios: to the best engine and layout on the host at the same n
("x best": bench/raw_engine.py --compare, onnxruntime, OpenVINO and torch, one session on all cores
and one per core, measured before and after the load in this run), to raw onnxruntime as one
session with the server's threads per worker ("x raw", also before and after) and to the
baseline. The server runs with the service's own layout for the host (service/settings.py: workers
and threads) and backend auto unless --workers / --backend (or GANSERVE_*) say otherwise; the report
says which it used (GET /models), and the host (CPU model, cores, vector extensions, load). Then
the HTTP floors at c = 64, the micro-batcher's effect, peak RSS per process, and a soak that checks
the workers' memory stays flat (bench/probes.py), then a burst of n = 4096 json answers and an idle
minute: RSS before, at the peak and after (bench/memory_soak.py). Without trained `models/`, it
exports untrained stand-ins of the four default models into /tmp (bench/stand_in_models.py): same
graphs, same cost. Issue 7's and issue 18's targets are checked at the end; --markdown writes the
run as a page of docs/perf-log/ (bench/report.py renders a saved --out JSON the
same way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from load import LoadError, Result, require_wrk, settle  # noqa: E402
from memory_soak import burst_then_idle  # noqa: E402
from probes import batching_variants, floors, measured, soak  # noqa: E402
from report import (  # noqa: E402
    best_limits,
    host_line,
    markdown,
    print_batching,
    print_grid,
    print_summary,
    run_file_name,
)
from run_facts import compare_limits, machine, raw_limits, served_on  # noqa: E402
from servers import REPO, MemorySampler, Server, ServerError, start_baseline, start_ganserve  # noqa: E402

SCRATCH = Path("/tmp/ganserve-bench")
# Concurrencies per request size: ganserve serves 16 requests at a time per worker by default
# (GANSERVE_THREADS; 4 before 2b20126); more only queue.
CONCURRENCY = {1: (1, 8, 64), 64: (1, 8, 64), 1024: (1, 4, 8)}
# wrk drops the requests still in flight when its time is up: up to c / 2 requests' worth. Bulk
# requests run longer so that this stays a few percent of the count.
LONGER_FROM_N, LONGER_FACTOR = 1024, 3


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, help="default: models/ when it holds the model, else stand-ins in /tmp")
    p.add_argument("--model", default="mnist")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    p.add_argument("--formats", nargs="+", default=["json", "npy", "png"], choices=["json", "npy", "png"])
    p.add_argument("--concurrency", type=int, nargs="+", help="the same concurrencies for every n (default: per n)")
    p.add_argument("--seconds", type=float, default=5.0, help="per load point (n = 1024 points: 3x)")
    p.add_argument("--quick", action="store_true", help="one concurrency per n, no extra servers, no soak")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument(
        "--soak-minutes", type=float, default=6.0, help="0 to skip; since 16 threads RSS takes ~3.5 min to level off"
    )
    p.add_argument("--url", help="measure a running server there instead of starting one (no memory figures)")
    p.add_argument("--baseline-url", help="with --url: a running baseline server to compare against")
    p.add_argument(
        "--raw-json",
        type=Path,
        help="raw limits from `bench/raw_engine.py --json` (with --url: run it there); skips --compare's "
        "limit unless --limits-json gives it",
    )
    p.add_argument(
        "--limits-json",
        type=Path,
        help="the limit over engines and layouts from `bench/raw_engine.py --compare --json` (with --url: "
        "run it there) instead of measuring it here",
    )
    p.add_argument("--no-compare", action="store_true", help="skip the limit over engines and layouts (no x best)")
    p.add_argument(
        "--limit-seconds",
        type=float,
        default=3.0,
        help="per measurement of the limits (raw onnxruntime; each engine, layout and n of --compare)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="GANSERVE_WORKERS for the servers started (default: the service's layout for this host)",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "onnxruntime", "openvino"],
        help="GANSERVE_BACKEND for the servers started (default auto)",
    )
    p.add_argument("--out", type=Path, help="also write every figure as JSON here")
    p.add_argument(
        "--markdown",
        type=Path,
        help="also write the run as Markdown: into a folder (docs/perf-log: a file named by time, CPU and "
        "commit), to a file, or '-' to print it",
    )
    p.add_argument(
        "--only-batching",
        action="store_true",
        help="only the micro-batching probe: on vs off at n=1 npy c=64 (with --quick: no threads sweep)",
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of the micro-batching probe")
    p.add_argument(
        "--peers",
        nargs="*",
        metavar="PEER",
        help="also run ganserve against the peer servers of bench/peers/ (set up by bench/peers/setup.sh): "
        "these, or every one set up when none is named; 2 rounds in alternating order",
    )
    return p.parse_args()


def models_dir_for(args: argparse.Namespace) -> Path:
    if args.models_dir is not None:
        return args.models_dir
    if (REPO / "models" / args.model / "model.json").is_file():
        return REPO / "models"
    from stand_in_models import ensure_stand_ins

    return ensure_stand_ins(SCRATCH / "models")


def load_points(args: argparse.Namespace) -> list[tuple[int, str, int]]:
    points = []
    for n in args.sizes:
        levels = args.concurrency or CONCURRENCY.get(n, (1, 8, 64))
        levels = levels[-1:] if args.quick else levels
        points += [(n, fmt, c) for fmt in args.formats for c in levels]
    return points


def drive(servers: list[Server], model: str | None, points, seconds: float, bar: tqdm) -> list[dict]:
    """Every point on each server in turn (ganserve, then the baseline), point by point: a change
    in the machine's load during the run falls on both sides of a ratio alike."""
    rows = []
    for n, fmt, c in points:
        for server in servers:
            named = {"model": model} if model and server is servers[0] else {}  # the baseline serves one model
            body = {"n": n, "seed": 1, "format": fmt, **named}
            bar.set_postfix_str(f"{server.name} n={n} {fmt} c={c}")
            try:
                r, cpu_ms = measured(server, "/sample", c, seconds * (LONGER_FACTOR if n >= LONGER_FROM_N else 1), body)
                settle(server.url + "/sample", {**body, "n": 1})
            except LoadError as e:
                tqdm.write(f"  {server.name} n={n} {fmt} c={c}: {e}")
                r, cpu_ms = Result(0, -1, seconds, 0, 0, 0), None
            rows.append(
                {
                    "target": server.name,
                    "n": n,
                    "format": fmt,
                    "c": c,
                    "samples_per_s": r.rps * n,
                    "server_cpu_ms": cpu_ms,
                    **r.as_dict(),
                }
            )
            bar.update()
    return rows


def start_servers(args: argparse.Namespace, models_dir: Path | None) -> list[Server]:
    if args.url:
        servers = [Server("ganserve", args.url.rstrip("/"), None)]
        if args.baseline_url:
            servers.append(Server("baseline", args.baseline_url.rstrip("/"), None))
        return servers
    servers = [start_ganserve(models_dir, SCRATCH, {})]
    if not args.no_baseline:
        preset = json.loads((models_dir / args.model / "model.json").read_text())["training"]["preset"]
        try:
            servers.append(start_baseline(preset, SCRATCH))
        except ServerError:
            servers[0].stop()
            raise
    return servers


def peers_run(args: argparse.Namespace, models_dir: Path) -> dict:
    """ganserve and the peers (bench/peers/run.py) at the peers' points, one server at a time, two
    rounds in alternating order, twice --seconds a point (a peer at n = 1024 may take seconds a
    request: MLServer's JSON)."""
    from peer_figures import POINTS
    from peers.run import PEERS, run_peers

    names = args.peers or [name for name, p in PEERS.items() if p.script is not None and p.ready()]
    names = ["ganserve", *(name for name in names if name != "ganserve")]
    missing = [name for name, p in PEERS.items() if p.script is not None and name not in names]
    if missing:
        print(f"peers not set up, not run: {', '.join(missing)} (bench/peers/setup.sh)", flush=True)
    model = models_dir / args.model / "generator.onnx"
    with tqdm(total=2 * len(names) * len(POINTS), desc="peers", unit="point") as bar:
        rows = run_peers(names, list(POINTS), 2 * args.seconds, 2, SCRATCH / "peers", model, bar)
    setup = {name: {"version": PEERS[name].version, "batching": PEERS[name].batching} for name in names}
    return {"rows": rows, "setup": setup, "not_run": missing}


def run(args: argparse.Namespace, figures: dict) -> None:
    models_dir = None if args.url else models_dir_for(args)
    print(f"models: {models_dir or args.url}; logs: {SCRATCH}", flush=True)
    threads = figures["machine"]["graph_threads"]
    if args.raw_json:
        raw_doc = json.loads(args.raw_json.read_text())
        raw = {int(n): row for n, row in raw_doc["samples_per_s"].items()}
        figures["raw_before"] = figures["raw_after"] = raw
        figures["raw_provider"] = raw_doc.get("provider")
        figures["raw_threads"] = raw_doc.get("threads")
        print(f"raw limits from {args.raw_json}, measured on {figures['raw_provider']}", flush=True)
    elif models_dir:
        figures["raw_threads"] = threads
        figures["raw_before"] = raw_limits(models_dir, args.model, args.sizes, args.limit_seconds, threads)
    # The limit over engines and layouts; with --raw-json (a remote or GPU host) only from --limits-json.
    compare = models_dir is not None and not args.raw_json and not args.limits_json and not args.no_compare
    if args.limits_json:
        figures["limits_before"] = figures["limits_after"] = json.loads(args.limits_json.read_text())
        print(f"the limit over engines and layouts from {args.limits_json}", flush=True)
    elif compare:
        figures["limits_before"] = compare_limits(models_dir, args.model, args.sizes, args.limit_seconds, "before")
    servers = start_servers(args, models_dir)
    ganserve = servers[0]
    try:
        figures["served_on"] = s = served_on(ganserve, args.model)
        print(
            f"ganserve runs {args.model} on {s['provider']} ({s['device']}), backend {s['backend']} "
            f"({s['backend_reason']}); layout: {s['layout']}",
            flush=True,
        )
        if not args.url and s["graph_threads"] not in (None, threads):
            print(
                f"warning: the server runs {s['graph_threads']} graph thread(s) per worker, raw onnxruntime "
                f"was measured with {threads}",
                flush=True,
            )
        points = load_points(args)
        sampler = MemorySampler(ganserve)
        with sampler, tqdm(total=len(points) * len(servers), desc="load", unit="point") as bar:
            figures["rows"] = drive(servers, args.model, points, args.seconds, bar)
            figures["floors"] = {
                s.name: floors(s, args.model if s is ganserve else None, args.seconds) for s in servers
            }
            if models_dir and args.soak_minutes > 0 and not args.quick:
                for s in servers[1:]:
                    s.stop()  # the soak's server has the cores to itself
                figures["soak_worker_mb"] = soak(ganserve, sampler, args.model, args.soak_minutes)
                # Then a burst of large answers and an idle minute: does the memory come back?
                figures["burst_then_idle"] = b = burst_then_idle(ganserve, sampler, args.model)
                print(
                    f"burst then idle: worker RSS {b['start_mb']} MB before, {b['peak_mb']} MB at the peak, "
                    f"{b['idle_mb']} MB every 10 s idle ({'within' if b['within_20pct'] else 'NOT within'} "
                    "20% of before)",
                    flush=True,
                )
        figures["memory_peak_mb"] = sampler.peak_mb
    finally:
        for s in servers:
            s.stop()
    if models_dir and args.peers is not None:
        figures["peers"] = peers_run(args, models_dir)
    if models_dir and not args.quick:
        figures["batching"] = batching_variants(models_dir, SCRATCH, args.model, args.seconds, args.rounds)
    if models_dir and not args.raw_json:
        figures["raw_after"] = raw_limits(models_dir, args.model, args.sizes, args.limit_seconds, threads)
    if compare:
        figures["limits_after"] = compare_limits(models_dir, args.model, args.sizes, args.limit_seconds, "after")
    figures["best_limit"] = best_limits(figures)


def main() -> int:
    args = parse_args()
    try:
        require_wrk()
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    SCRATCH.mkdir(parents=True, exist_ok=True)
    # The servers started here (ganserve, the batching variants) read these as `python -m service serve` would.
    if args.workers is not None:
        os.environ["GANSERVE_WORKERS"] = str(args.workers)
    if args.backend is not None:
        os.environ["GANSERVE_BACKEND"] = args.backend
    figures: dict = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "command": " ".join(sys.argv[1:]),
    }
    m = figures["machine"]
    if args.url:
        m["server_url"] = args.url  # the host line is then the client's, not the server's
    print(
        f"host: {m['cpu']}, {m['cores']} cores, {'/'.join(m['vector']) or 'no AVX'}; load average "
        f"{m['load_avg_at_start'][0]:.2f}; layout: {m['layout']}",
        flush=True,
    )
    try:
        if args.only_batching:
            models_dir = models_dir_for(args)
            print(f"models: {models_dir}; logs: {SCRATCH}", flush=True)
            figures["batching"] = batching_variants(
                models_dir, SCRATCH, args.model, args.seconds, args.rounds, sweep=not args.quick
            )
        else:
            run(args, figures)
    except (ServerError, LoadError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    figures["machine"]["load_avg_at_end"] = os.getloadavg()
    if args.only_batching:
        print(f"\nhost: {host_line(figures)}")
        print_batching(figures)
    else:
        print_grid(figures)
        print_summary(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
        print(f"figures written to {args.out}")
    if args.markdown and not args.only_batching:
        if str(args.markdown) == "-":
            print("\n" + markdown(figures), end="")
        else:
            target = args.markdown / run_file_name(figures) if args.markdown.is_dir() else args.markdown
            target.write_text(markdown(figures))
            print(f"the run's page written to {target} (docs/PERFORMANCE.md keeps the current table per host)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
