"""Before and after: two checkouts of the service side by side, under the same loads, interleaved.

    git worktree add /tmp/before <commit>        # or any copy of the repo
    .venv/bin/python bench/ab.py --a /tmp/before --b . --models-dir /tmp/ganserve-bench/models
    # one checkout, two settings (micro-batching on vs off):
    .venv/bin/python bench/ab.py --a . --b . --b-env GANSERVE_MICRO_BATCHING=false --models-dir models \
        --loads "n=1 npy c=64"
    # ganserve against the hand-written baseline (bench/baseline_torch_server.py), same rounds:
    .venv/bin/python bench/ab.py --a . --b-baseline --models-dir models --loads "n=1 npy c=1"

Each load runs on A, then on B, for several rounds, so that whatever else the machine is doing
falls on both alike; printed per load: req/s, p50 and p99 latency (wrk's, per run), and the
server's CPU ms per request (the steadier figure on shared cores), median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from tqdm import tqdm

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from load import require_wrk, settle  # noqa: E402
from probes import measured  # noqa: E402
from servers import Server, bentoml_serve_command, free_port, spawn, start_baseline, wait_ready  # noqa: E402

LOADS = {  # name: (body, connections)
    "n=1 json c=1": ({"n": 1, "format": "json"}, 1),
    "n=1 npy c=1": ({"n": 1, "format": "npy"}, 1),
    "n=1 npy c=8": ({"n": 1, "format": "npy"}, 8),
    "n=1 npy c=64": ({"n": 1, "format": "npy"}, 64),
    # Seeded: the answer is fixed, so it carries an ETag computed per request (http/caching.py).
    "n=1 npy seed c=64": ({"n": 1, "format": "npy", "seed": 7}, 64),
    "n=1024 npy seed c=8": ({"n": 1024, "format": "npy", "seed": 7}, 8),
    "n=1 png c=1": ({"n": 1, "format": "png"}, 1),
    "n=1 png c=8": ({"n": 1, "format": "png"}, 8),
    "n=64 npy c=1": ({"n": 64, "format": "npy"}, 1),
    "n=64 npy c=8": ({"n": 64, "format": "npy"}, 8),
    "n=1024 npy c=1": ({"n": 1024, "format": "npy"}, 1),
    "n=1024 npy c=4": ({"n": 1024, "format": "npy"}, 4),
    "n=1024 npy c=8": ({"n": 1024, "format": "npy"}, 8),
    "n=1024 json c=4": ({"n": 1024, "format": "json"}, 4),
    "n=1024 png c=4": ({"n": 1024, "format": "png"}, 4),
    # uint8 pixels instead of float32 (ganserve only: the baseline has no `dtype`).
    "n=1024 npy-uint8 c=4": ({"n": 1024, "format": "npy", "dtype": "uint8"}, 4),
    "n=1024 json-uint8 c=4": ({"n": 1024, "format": "json", "dtype": "uint8"}, 4),
    # POST /interpolate (ganserve only: the baseline has no such route).
    "interpolate steps=8 npy c=8": ({"seeds": [1, 2], "steps": 8, "format": "npy"}, 8),
    "interpolate steps=8 json c=1": ({"seeds": [1, 2], "steps": 8, "format": "json"}, 1),
}


def start(checkout: Path, models_dir: Path, name: str, log_dir: Path, extra_env: dict[str, str]) -> Server:
    port = free_port()
    command = bentoml_serve_command(port, checkout)
    env = {
        **os.environ,
        "GANSERVE_MODELS_DIR": str(models_dir.resolve()),
        "GANSERVE_DEVICE": "cpu",
        "PYTHONPATH": str(checkout.resolve()),
        **extra_env,
    }
    server = spawn(name, command, env, port, log_dir, cwd=checkout.resolve())
    wait_ready(server, "/readyz", 240)
    return server


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=Path, required=True, help="checkout A (e.g. before)")
    p.add_argument("--b", type=Path, help="checkout B (e.g. after)")
    p.add_argument(
        "--b-baseline",
        action="store_true",
        help="B is the hand-written baseline serving the generator of the model's training preset",
    )
    p.add_argument("--models-dir", type=Path, required=True)
    p.add_argument("--model", default="mnist")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    p.add_argument("--a-env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment for A's server")
    p.add_argument("--b-env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment for B's server")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    args = p.parse_args()
    if (args.b is not None) == args.b_baseline:  # exactly one of them
        p.error("give either --b or --b-baseline")
    if args.b_baseline and args.b_env:
        p.error("--b-env applies to a ganserve checkout, not to the baseline")
    if args.b_baseline:  # the baseline has no /interpolate and no dtype: by default leave those loads out
        ours = [load for load in args.loads if "seeds" in LOADS[load][0] or "dtype" in LOADS[load][0]]
        if ours and p.get_default("loads") != args.loads:
            p.error(f"the baseline serves no /interpolate and no dtype: {', '.join(ours)}")
        args.loads = [load for load in args.loads if load not in ours]
    envs = {side: dict(kv.split("=", 1) for kv in getattr(args, f"{side}_env")) for side in ("a", "b")}
    require_wrk()
    log_dir = Path("/tmp/ganserve-bench")
    log_dir.mkdir(parents=True, exist_ok=True)
    servers = []
    try:
        servers = [start(args.a, args.models_dir, "A", log_dir, envs["a"])]
        if args.b_baseline:
            preset = json.loads((args.models_dir / args.model / "model.json").read_text())["training"]["preset"]
            servers.append(start_baseline(preset, log_dir))
            servers[-1].name = "B"
        else:
            servers.append(start(args.b, args.models_dir, "B", log_dir, envs["b"]))
        results = {(load, s.name): [] for load in args.loads for s in servers}
        with tqdm(total=args.rounds * len(args.loads) * 2, desc="a/b", unit="run") as bar:
            for _ in range(args.rounds):
                for load in args.loads:
                    body, c = LOADS[load]
                    path = "/interpolate" if "seeds" in body else "/sample"
                    body = body if "seeds" in body else {**body, "seed": 1}
                    for s in servers:
                        sent = (
                            body if s.name == "B" and args.b_baseline else {**body, "model": args.model}
                        )  # the baseline serves one model
                        r, cpu_ms = measured(s, path, c, args.seconds, sent)
                        settle(s.url + "/sample", {"model": sent.get("model"), "n": 1} if "model" in sent else {"n": 1})
                        results[(load, s.name)].append((r.rps, cpu_ms or 0.0, r.errors, r.p50_ms, r.p99_ms))
                        bar.update()
    finally:
        for s in servers:
            s.stop()
    med = lambda runs, i: statistics.median(x[i] for x in runs)
    b_name = "the hand-written baseline" if args.b_baseline else f"{args.b} {envs['b'] or ''}"
    print(
        f"A = {args.a} {envs['a'] or ''}, B = {b_name}; median of {args.rounds} interleaved "
        f"rounds of {args.seconds:.0f} s, load avg (1, 5, 15 min) at the end {os.getloadavg()}"
    )
    print(
        f"{'load':>16} {'A req/s':>9} {'B req/s':>9} {'B/A':>5} {'A p50':>7} {'B p50':>7} {'A p99':>7} {'B p99':>7} "
        f"{'A cpu-ms':>8} {'B cpu-ms':>8} {'B/A':>5} {'errors':>6}"
    )
    for load in args.loads:
        a, b = results[(load, "A")], results[(load, "B")]
        ra, rb, ca, cb = med(a, 0), med(b, 0), med(a, 1), med(b, 1)
        errors = sum(x[2] for x in a + b)
        print(
            f"{load:>16} {ra:>9,.1f} {rb:>9,.1f} {rb / ra if ra else 0:>5.2f} {med(a, 3):>7.1f} {med(b, 3):>7.1f} "
            f"{med(a, 4):>7.1f} {med(b, 4):>7.1f} {ca:>8.2f} {cb:>8.2f} {cb / ca if ca else 0:>5.2f} {errors:>6}"
        )
        for side, runs in (("A", a), ("B", b)):  # every round, so the spread is visible
            print(
                f"{'':>16} {side} rounds: "
                + "; ".join(f"{x[0]:,.1f} req/s p50 {x[3]:.1f} p99 {x[4]:.1f} {x[1]:.2f} cpu-ms" for x in runs)
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "a": str(args.a),
                    "b": "baseline" if args.b_baseline else str(args.b),
                    "env": envs,
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "load_avg_at_end": os.getloadavg(),
                    "runs": {
                        f"{load} {side}": [
                            dict(zip(("rps", "cpu_ms", "errors", "p50_ms", "p99_ms"), x)) for x in results[(load, side)]
                        ]
                        for load in args.loads
                        for side in ("A", "B")
                    },
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
