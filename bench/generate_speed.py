"""Dataset generation speed: samples/s writing an N-sample dataset of a model (default `mnist`,
1,000,000 samples) from the local folder and through one real server, next to the raw
onnxruntime throughput of the same generator; and the peak memory of a 10,000-sample run against
an N-sample one (flat when shards stream to disk). With --ray, the same dataset made by 2 Ray
workers (actors with one single-threaded engine each) on a two-node Ray cluster started here on
loopback (1 CPU per node), next to the local path: the driver's samples/s and peak RSS (the driver
holds no samples, so it stays flat), and Ray's overhead per shard (the driver's wait for a shard
minus the time the worker spent on it: scheduling and the result's transfer).

    .venv/bin/python bench/generate_speed.py [--model-dir models/mnist] [--samples 1000000]
        [--shard-size 10000] [--block-size 1024] [--dtype float32] [--skip-http] [--ray] [--json FILE]

Each run is a real `python -m service generate` subprocess writing to a temporary folder (deleted
afterwards); its samples/s is the one it reports itself (shards only: model loading excluded),
its peak RSS comes from the kernel (wait4). The raw figure runs the generator alone on
pre-drawn latents, in batches of --block-size, on as many threads as the command uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere in the repo
from models.card import read_card  # noqa: E402
from service.settings import cpu_count  # noqa: E402

RATE = re.compile(r"; ([\d,]+) samples/s")
OVERHEAD = re.compile(r"overhead per shard .* median ([\d.]+) ms")
PER_NODE = re.compile(r"shards per node (\{.*?\})")


def raw_onnxruntime(model_dir: Path, batch: int, seconds: float) -> float:
    """Samples/s of generator.onnx alone: what generation could reach if writing cost nothing."""
    card = read_card(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_count()
    session = ort.InferenceSession(str(model_dir / "generator.onnx"), options, providers=["CPUExecutionProvider"])
    name = card.onnx.generator.inputs[0].name
    z = np.random.default_rng(0).standard_normal((batch, card.latent.dim)).astype(np.float32)  # (batch, z_dim)
    session.run(None, {name: z})  # warm-up
    done, start = 0, time.perf_counter()
    with tqdm(desc="raw onnxruntime", unit="sample", unit_scale=True, file=sys.stderr) as bar:
        while time.perf_counter() - start < seconds:
            session.run(None, {name: z})
            done += batch
            bar.update(batch)
    return done / (time.perf_counter() - start)


def generate(args: argparse.Namespace, source: list[str], samples: int, out: Path) -> dict:
    """One generate subprocess: its reported samples/s, wall time and peak RSS (of the driver
    alone with --ray: the workers are the cluster's processes, not its children)."""
    argv = [
        sys.executable,
        "-m",
        "service",
        "generate",
        *source,
        "--out",
        str(out),
        "--samples",
        str(samples),
        "--shard-size",
        str(args.shard_size),
        "--block-size",
        str(args.block_size),
        "--dtype",
        args.dtype,
    ]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        printed = proc.stdout.read()
        proc.stdout.close()
        err.seek(0)
        said = err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"generate failed ({os.waitstatus_to_exitcode(status)}): {' '.join(argv)}\n{said[-3000:]}")
    shutil.rmtree(out)
    result = {
        "samples": samples,
        "samples_per_s": float(RATE.search(printed).group(1).replace(",", "")),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }
    if OVERHEAD.search(said):
        result["ray_overhead_per_shard_ms"] = float(OVERHEAD.search(said).group(1))
        result["shards_per_node"] = PER_NODE.search(said).group(1)
    print(f"  {' '.join(source[:1] + source[2:])} {samples:,}: {result}", file=sys.stderr, flush=True)
    return result


def ray_cluster():
    """Two Ray nodes of 1 CPU each on 127.0.0.1 (../shared/STACK.md: never `ray start` here)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    return cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, home: Path) -> tuple[subprocess.Popen, str]:
    """`python -m service serve` on the model's models directory, CPU, one worker."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANSERVE_")}
    env.update(
        GANSERVE_MODELS_DIR=str(model_dir.parent),
        GANSERVE_DEFAULT_MODEL=model_dir.name,
        GANSERVE_DEVICE="cpu",
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="true",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    sys.exit("the server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "mnist")
    parser.add_argument("--samples", type=int, default=1_000_000, help="dataset size (smaller for a quick run)")
    parser.add_argument("--small", type=int, default=10_000, help="the small run of the memory comparison")
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--dtype", choices=["float32", "uint8"], default="float32")
    parser.add_argument("--raw-seconds", type=float, default=10.0)
    parser.add_argument("--skip-http", action="store_true", help="local and raw only")
    parser.add_argument("--ray", action="store_true", help="also 2 Ray workers on a two-node loopback cluster")
    parser.add_argument("--skip-small", action="store_true", help="no 10,000-sample memory comparison runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model_dir = args.model_dir.resolve()
    card = read_card(model_dir)
    local = ["--model-dir", str(model_dir)]
    results = {
        "model": card.name,
        "version": card.version,
        "cores": cpu_count(),
        "dtype": args.dtype,
        "shard_size": args.shard_size,
        "block_size": args.block_size,
    }
    with tempfile.TemporaryDirectory(prefix="generate-bench-") as tmp:
        tmp = Path(tmp)
        results["raw_onnxruntime_per_s"] = round(raw_onnxruntime(model_dir, args.block_size, args.raw_seconds))
        if not args.skip_small:
            results["local_small"] = generate(args, local, args.small, tmp / "small")
        results["local"] = generate(args, local, args.samples, tmp / "local")
        if args.ray:
            # The local path as the Ray workers run it (2 shards in flight, 1 thread each), beside
            # its default (2 shards in flight, a thread per core each).
            results["local_1_thread"] = generate(args, [*local, "--threads", "1"], args.samples, tmp / "local1")
            cluster = ray_cluster()
            try:
                on_ray = [*local, "--ray", cluster.address, "--workers", "2", "--threads", "1"]
                if not args.skip_small:
                    results["ray_small"] = generate(args, on_ray, args.small, tmp / "ray-small")
                results["ray"] = generate(args, on_ray, args.samples, tmp / "ray")
            finally:
                cluster.shutdown()
        if not args.skip_http:
            server, url = start_server(model_dir, tmp / "bentoml")
            try:
                # Replicas default to 2 workers (shards in flight) per URL; the server batches them.
                results["http"] = generate(args, ["--url", url, "--workers", "4"], args.samples, tmp / "http")
            finally:
                server.terminate()
                server.wait(timeout=60)
    raw = results["raw_onnxruntime_per_s"]
    print(
        f"model {card.name} ({card.version}), {results['cores']} cores, {args.dtype}, shards of {args.shard_size}, "
        f"blocks of {args.block_size}"
    )
    print(f"raw onnxruntime (generator only): {raw:>10,.0f} samples/s")
    for key in ("local", "local_1_thread", "http", "ray"):
        if key in results:
            r = results[key]
            results[key]["ratio_to_raw"] = round(r["samples_per_s"] / raw, 3)
            print(
                f"{key:<14} {r['samples']:>9,} samples: {r['samples_per_s']:>10,.0f} samples/s "
                f"({r['samples_per_s'] / raw:.0%} of raw), wall {r['wall_s']} s, peak RSS {r['peak_rss_mib']} MiB"
            )
    if "ray" in results:
        r = results["ray"]
        r["ratio_to_local"] = round(r["samples_per_s"] / results["local"]["samples_per_s"], 3)
        r["ratio_to_local_1_thread"] = round(r["samples_per_s"] / results["local_1_thread"]["samples_per_s"], 3)
        print(
            f"ray: {r['ratio_to_local']:.0%} of the local path's samples/s ({r['ratio_to_local_1_thread']:.0%} "
            f"of it with 1 thread per worker); Ray's overhead per shard "
            f"{r['ray_overhead_per_shard_ms']} ms (median); shards per node {r['shards_per_node']}"
        )
    for key in ("local", "ray"):
        if f"{key}_small" in results:
            small = results[f"{key}_small"]
            print(
                f"peak RSS, {key} (driver): {small['samples']:,} samples {small['peak_rss_mib']} MiB, "
                f"{results[key]['samples']:,} samples {results[key]['peak_rss_mib']} MiB"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
