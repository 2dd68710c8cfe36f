"""ganserve against the servers a user would pick instead (bench/peers/README.md), on one request:
"n samples from a seed" of the same ONNX generator, onnxruntime on the CPU everywhere.

    bash bench/peers/setup.sh                    # once: one environment per peer
    .venv/bin/python bench/peers/run.py --peers ganserve fastapi litserve rayserve pytriton kserve mlserver \\
        --points 1:64 1024:8 1024:1 --seconds 10 --rounds 2 --out peers.json

Only one server runs at a time. Each round starts every peer in turn (round 1 in the order given,
round 2 reversed, and so on, so drift on a shared machine does not always favour the same one);
each is checked against onnxruntime on ganserve's latents (n = 1, 1024 and 3) before it is timed,
then driven with wrk at each point (n:c = n samples per request over c connections), then stopped.
Per point: req/s, samples/s, p50/p99, errors, the server's CPU per request (every process of it:
Ray's GCS, raylet and workers, Triton's server and backend, TorchServe's JVM and worker) and wrk's
own CPU. Prints one markdown table per round with the host, and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # bench/peers, bench/ and the repo

from catalog import PEERS, peer, start_peer, stop_peer  # noqa: E402
from check import check_answer  # noqa: E402
from host import cpu, describe  # noqa: E402
from load import run_wrk, settle  # noqa: E402
from servers import REPO, cpu_seconds  # noqa: E402

DEFAULT_MODEL = REPO / "models" / "mnist" / "generator.onnx"
DEFAULT_POINTS = ["1:64", "1024:8", "1024:1"]
CHECKS = (1, 1024, 3)  # n checked before timing
SEED = 7


def parse_point(text: str) -> tuple[int, int]:
    """'n:c' -> (n samples per request, c connections)."""
    try:
        n, c = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is n:c, e.g. 1024:8 (got {text!r})") from None
    if n < 1 or c < 1:
        raise argparse.ArgumentTypeError(f"n and c must be >= 1 (got {text!r})")
    return n, c


def run_peers(
    peers: list[str],
    points: list[tuple[int, int]],
    seconds: float,
    rounds: int,
    log_dir: Path,
    model_path: Path = DEFAULT_MODEL,
    progress: tqdm | None = None,
) -> list[dict]:
    """One row per (round, peer, point); a peer that fails to start or to answer right gets one
    row with its `error` instead, and the others go on."""
    for name in peers:
        peer(name)  # unknown names fail before anything starts
    model_path = Path(model_path).resolve()
    model = model_path.parent.name
    rows: list[dict] = []
    for r in range(rounds):
        order = peers if r % 2 == 0 else list(reversed(peers))
        for name in order:
            p = PEERS[name]
            base = {"round": r + 1, "peer": name, "version": p.version}
            started = time.monotonic()
            server, done = None, 0
            try:
                server = start_peer(name, model_path, log_dir)
                ready_s = time.monotonic() - started
                checked = {n: check_answer(p, server.url, model_path, n, SEED) for n in CHECKS}
                for n, c in points:
                    url, body = server.url + p.path, p.body(n, SEED, model)
                    before = cpu_seconds(server)
                    result = run_wrk(url, c, seconds, body)
                    after = cpu_seconds(server)
                    settle(url, body)  # let requests wrk abandoned finish before the next point
                    cpu_s = None if before is None or after is None else after - before
                    cpu_ms = cpu_s * 1e3 / result.requests if cpu_s is not None and result.requests else None
                    rows.append(
                        {
                            **base,
                            "n": n,
                            "c": c,
                            "rps": result.rps,
                            "samples_per_s": result.rps * n,
                            "p50_ms": result.p50_ms,
                            "p99_ms": result.p99_ms,
                            "errors": result.errors,
                            "requests": result.requests,
                            "seconds": result.seconds,
                            "server_cpu_ms_per_request": cpu_ms,
                            "server_cpu_s": cpu_s,
                            "client_cpu": result.client_cpu,
                            "ready_s": ready_s,
                            "checked_max_abs_diff": max(checked.values()),
                        }
                    )
                    done += 1
                    if progress is not None:
                        progress.update()
            except Exception as e:  # one peer's failure is reported, not fatal to the run
                rows.append({**base, "error": f"{type(e).__name__}: {e}", "log": str(log_dir / f"{name}.log")})
                if progress is not None:
                    progress.update(len(points) - done)
            finally:
                if server is not None:
                    left = stop_peer(server)
                    if left:
                        rows.append({**base, "warning": f"killed after stop: {left}"})
    return rows


def table(rows: list[dict], round_: int) -> str:
    lines = [
        "| peer | version | n | c | req/s | samples/s | p50 ms | p99 ms | errors | server CPU ms/req | client CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for x in rows:
        if x["round"] != round_:
            continue
        if "error" in x:
            lines.append(f"| {x['peer']} | {x['version']} | | | failed: {x['error'][:200]} | | | | | | |")
        elif "warning" in x:
            lines.append(f"| {x['peer']} | {x['version']} | | | {x['warning'][:200]} | | | | | | |")
        elif not x["requests"]:
            lines.append(
                f"| {x['peer']} | {x['version']} | {x['n']} | {x['c']} | 0 (none answered in {x['seconds']:.0f} s) "
                f"| 0 | | | {x['errors']} | | {x['client_cpu']:.0%} |"
            )
        else:
            cpu_ms = x["server_cpu_ms_per_request"]
            lines.append(
                f"| {x['peer']} | {x['version']} | {x['n']} | {x['c']} | {x['rps']:,.1f} | {x['samples_per_s']:,.0f} "
                f"| {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {x['errors']} | "
                f"{'' if cpu_ms is None else f'{cpu_ms:.2f}'} | {x['client_cpu']:.0%} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", nargs="+", default=list(PEERS), help=f"from: {' '.join(PEERS)}")
    parser.add_argument("--points", nargs="+", type=parse_point, default=[parse_point(p) for p in DEFAULT_POINTS])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="the ONNX generator (its folder's model.json)"
    )
    parser.add_argument("--log-dir", type=Path, help="server logs (default: a new temporary directory)")
    parser.add_argument("--out", type=Path, help="write the rows and the setup as JSON here")
    args = parser.parse_args()
    unknown = [name for name in args.peers if name not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; known: {', '.join(PEERS)}")
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="ganserve-peers-"))
    host = describe()
    print(f"host: {host}\nlogs: {log_dir}", flush=True)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with tqdm(total=args.rounds * len(args.peers) * len(args.points), desc="peers", unit="point") as bar:
        rows = run_peers(args.peers, args.points, args.seconds, args.rounds, log_dir, args.model, progress=bar)
    for r in range(1, args.rounds + 1):
        order = args.peers if r % 2 else list(reversed(args.peers))
        print(f"\n### Round {r} of {args.rounds} ({' -> '.join(order)}), {args.seconds:g} s per point\n\n{host}\n")
        print(table(rows, r))
    if args.out:
        setup = {
            name: {
                "version": PEERS[name].version,
                "onnxruntime": PEERS[name].installed.get("onnxruntime"),
                "batching": PEERS[name].batching,
                "answer": PEERS[name].answer,
                "env": str(PEERS[name].env),
            }
            for name in args.peers
        }
        document = {
            "started": started,
            "host": host,
            "cpu": cpu(),
            "model": str(args.model),
            "seconds": args.seconds,
            "rounds": args.rounds,
            "points": [{"n": n, "c": c} for n, c in args.points],
            "peers": setup,
            "rows": rows,
        }
        args.out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    failed = [x for x in rows if "error" in x]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
