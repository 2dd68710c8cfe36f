"""Repeated dataset requests through the scale-out proxy's cache (issue 32): the same dataset made
twice through nginx, then once more with another seed, each by the real
`python -m service generate --url <proxy>`; per run its wall time and samples/s, the share of its
GET /sample requests nginx answered from its cache, and whether the second run's files are the
first run's, byte for byte.

    .venv/bin/python bench/dataset_cache.py [--model mnist] [--samples 20000] [--block-size 1024]
        [--shard-size 10000] [--replicas 2] [--token SECRET] [--json FILE]

On loopback, as tests/deploy/test_proxy.py runs it: `--replicas` real `python -m service serve`
processes of the shipped models/ folder (CPU, one worker each; with --token they require it and
say the cache keys on it, GANSERVE_SHARED_CACHE_KEYS_TOKEN=true, as compose's scale profiles do)
behind real nginx with deploy/nginx/ganserve.conf.template rendered by deploy/nginx/render.sh,
inside a main config written here whose access log adds `$upstream_cache_status` (the template
itself logs nothing). The hit rate is counted from that log (HIT / requests to /sample); the
samples the replicas computed come from their own /metrics (`ganserve_samples_served_total`
deltas), a second count of what got past the cache. Everything lives in a temporary folder,
deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere in the repo
from host import describe, load_average  # noqa: E402  (bench/host.py: this script's folder)

from tests.servers import Server, find_tool, metric_sum, replica_env, start_nginx  # noqa: E402

READY_TIMEOUT_S = 180  # replicas importing onnxruntime on two shared cores
RATE = re.compile(r"; ([\d,]+) samples/s")
# One line per request: what the bench counts (method, path, status, cache status, replica, seconds, bytes).
LOG_FORMAT = "$request_method $uri $status $upstream_cache_status $upstream_addr $request_time $body_bytes_sent"


def start_replicas(args: argparse.Namespace, root: Path, replicas: list[Server]) -> None:
    """`--replicas` servers, appended to `replicas` as they start (so that the caller stops every
    one started, should a later one fail), then awaited until each is ready."""
    for index in range(args.replicas):  # all start before any is awaited: they boot in parallel
        env = replica_env(args.models_dir, root / f"bentoml-home-{index}", token=args.token)
        replicas.append(Server(f"replica {index}", env, root / f"replica-{index}.log"))
    for replica in tqdm(replicas, desc="replicas ready", unit="replica", file=sys.stderr):
        replica.wait_ready(READY_TIMEOUT_S)


def samples_served(replica: Server, model: str, headers: dict) -> float:
    """`ganserve_samples_served_total{model=...}` on the replica's own /metrics."""
    text = httpx.get(f"{replica.url}/metrics", headers=headers, timeout=30).text
    return metric_sum(text, "ganserve_samples_served_total", model=model)


def sample_lines(access_log: Path) -> list[list[str]]:
    if not access_log.exists():
        return []
    return [line.split(" ") for line in access_log.read_text().splitlines() if line.split(" ")[1:2] == ["/sample"]]


def logged_after(access_log: Path, seen: int, expected: int, timeout_s: float = 10.0) -> list[list[str]]:
    """The /sample lines past the first `seen`, once `expected` of them are there: nginx writes a
    line after its answer has gone out, so the client can finish first."""
    deadline = time.monotonic() + timeout_s
    while len(lines := sample_lines(access_log)[seen:]) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


def shard_digests(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.name.startswith("shard-")
    }


def generate(args: argparse.Namespace, proxy: str, seed: int, out: Path, label: str) -> dict:
    """One real `python -m service generate` through the proxy; its own progress bar on stderr."""
    argv = [
        sys.executable,
        "-m",
        "service",
        "generate",
        "--url",
        proxy,
        "--model",
        args.model,
        "--samples",
        str(args.samples),
        "--shard-size",
        str(args.shard_size),
        "--block-size",
        str(args.block_size),
        "--seed",
        str(seed),
        "--out",
        str(out),
        *(["--token", args.token] if args.token else []),
    ]
    print(f"{label}: generate --seed {seed}", file=sys.stderr, flush=True)
    env = {k: v for k, v in os.environ.items() if k != "GANSERVE_API_TOKEN"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"generate exited with {done.returncode}: {' '.join(argv)}\n{done.stdout}")
    rate = RATE.search(done.stdout)
    return {"wall_s": wall, "cli_samples_per_s": float(rate.group(1).replace(",", "")) if rate else None}


def measure(args, proxy: str, access_log: Path, replicas: list[Server], seed: int, out: Path, label: str) -> dict:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    seen = len(sample_lines(access_log))
    before = [samples_served(r, args.model, headers) for r in replicas]
    result = generate(args, proxy, seed, out, label)
    blocks = sum(
        -(-min(args.shard_size, args.samples - s) // args.block_size) for s in range(0, args.samples, args.shard_size)
    )
    lines = logged_after(access_log, seen, blocks)
    computed = [samples_served(r, args.model, headers) - b for r, b in zip(replicas, before)]
    statuses = Counter(line[3] for line in lines)
    methods = Counter(line[0] for line in lines)
    result.update(
        label=label,
        seed=seed,
        requests=len(lines),
        methods=dict(methods),
        cache=dict(statuses),
        hit_rate=statuses["HIT"] / len(lines) if lines else 0.0,
        samples_computed_by_replicas=[int(c) for c in computed],
        wall_samples_per_s=args.samples / result["wall_s"],
        proxy_seconds_per_request=sum(float(line[5]) for line in lines) / len(lines) if lines else None,
        digests=shard_digests(out),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--other-seed", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--token", help="replicas require this token (and say the cache keys on it)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.models_dir = args.models_dir.resolve()
    nginx = find_tool("nginx")
    if nginx is None:
        sys.exit("nginx is not installed (Debian package nginx; `make system-packages` installs it)")
    started_at = datetime.datetime.now().astimezone()
    load_start, host = load_average(), describe()
    runs = []
    with tempfile.TemporaryDirectory(prefix="dataset-cache-bench-") as tmp:
        root = Path(tmp)
        (root / "nginx").mkdir()
        replicas, proxy = [], None
        try:
            start_replicas(args, root, replicas)
            upstreams = [f"127.0.0.1:{r.port}" for r in replicas]
            proxy, url = start_nginx(nginx, root / "nginx", upstreams, LOG_FORMAT)
            access_log = root / "nginx" / "access.log"
            plan = [("run 1 (cold cache)", args.seed), ("run 2 (same dataset)", args.seed)]
            plan.append(("run 3 (other seed)", args.other_seed))
            for k, (label, seed) in enumerate(plan, 1):
                runs.append(measure(args, url, access_log, replicas, seed, root / f"run-{k}", label))
        finally:
            if proxy is not None:
                proxy.stop()
            for replica in replicas:
                replica.stop()
    load_end = load_average()
    identical = runs[0]["digests"] == runs[1]["digests"] and bool(runs[0]["digests"])
    print()
    print(f"host: {host}")
    print(
        f"date: {started_at:%Y-%m-%d %H:%M %Z}; load average (1 min) {load_start:.2f} at start, {load_end:.2f} at end"
    )
    print(
        f"{args.replicas} replicas (python -m service serve, CPU, 1 worker each) behind nginx with its proxy cache; "
        f"model {args.model}, {args.samples:,} samples, shards of {args.shard_size:,}, blocks of {args.block_size:,}"
    )
    print()
    print(
        "| run | seed | wall s | samples/s (wall) | samples/s (CLI) | /sample requests | cache | hit rate "
        "| nginx ms/request | computed by replicas |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for r in runs:
        cache = ", ".join(f"{k} {v}" for k, v in sorted(r["cache"].items()))
        methods = ", ".join(f"{k} {v}" for k, v in sorted(r["methods"].items()))
        computed = " + ".join(f"{c:,}" for c in r["samples_computed_by_replicas"])
        print(
            f"| {r['label']} | {r['seed']} | {r['wall_s']:.1f} | {r['wall_samples_per_s']:,.0f} | "
            f"{r['cli_samples_per_s']:,.0f} | {r['requests']} ({methods}) | {cache} | {r['hit_rate']:.0%} | "
            f"{1000 * r['proxy_seconds_per_request']:.0f} | {computed} |"
        )
    print()
    print(
        "samples/s (wall): samples / the command's wall time, its start-up included; (CLI): what the command "
        "reports, shards only. nginx ms/request: mean $request_time of its /sample lines."
    )
    print(
        f"run 2's shard files byte-identical to run 1's: {'yes' if identical else 'NO'} ({len(runs[0]['digests'])} files)"
    )
    print(f"run 3's differ from run 1's: {'yes' if runs[2]['digests'] != runs[0]['digests'] else 'NO'}")
    print(f"run 2 against run 1: {runs[0]['wall_s'] / runs[1]['wall_s']:.2f}x the wall speed")
    if args.json:
        figures = {
            "host": host,
            "date": started_at.isoformat(timespec="minutes"),
            "load_average": [load_start, load_end],
            "identical": identical,
            "runs": [{k: v for k, v in r.items() if k != "digests"} for r in runs],
        }
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
