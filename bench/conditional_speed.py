"""A conditional model against its unconditional twin: the same /sample request, interleaved.

    .venv/bin/python bench/conditional_speed.py --models-dir models --a mnist --b mnist-cond --n 1024

Both models are served by one in-process engine (the service's own, its session options and
micro-batchers) and asked the same request through the handler POST /sample runs
(service/http/handlers.py: latents, the graph, the npy encoding; HTTP costs the same for both and is
left out). Rounds alternate A and B so that whatever else the machine does falls on both alike;
printed: samples/s and this process's CPU ms per request, median over the rounds, and B / A.
A conditional request also resolves its labels and carries the class as one more column through
the micro-batcher: that is the difference measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from service.core.schemas import SampleRequest
from service.http import handlers
from service.runtime.engine import Engine


def one_round(engine: Engine, body: dict, seconds: float) -> tuple[float, float]:
    """(samples/s, CPU ms per request) of back-to-back requests for about `seconds`."""
    req = SampleRequest.model_validate(body)
    handlers.sample(engine, req, 20)  # warm-up
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while calls < 3 or time.perf_counter() - start < seconds:
        response = handlers.sample(engine, req, 20)
        assert response.status_code == 200, response.body[:200]
        calls += 1
    wall = time.perf_counter() - start
    return calls * body["n"] / wall, 1000 * (time.process_time() - cpu) / calls


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--a", default="mnist", help="the unconditional model")
    p.add_argument("--b", default="mnist-cond", help="the conditional model")
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--format", default="npy", choices=["npy", "json", "png"])
    p.add_argument("--labels", default="balanced", help="B's labels (JSON value; 'none': drawn from the seed)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = p.parse_args()
    engine = Engine(args.models_dir, device="cpu", default_model=args.a, intra_op_threads=args.threads)
    base = {"n": args.n, "seed": 7, "format": args.format}
    b_body = dict(base, model=args.b)
    if args.labels != "none":
        b_body["labels"] = json.loads(args.labels) if args.labels[:1] in "[0123456789" else args.labels
    results = {"a": [], "b": []}
    for _ in range(args.rounds):
        results["a"].append(one_round(engine, dict(base, model=args.a), args.seconds))
        results["b"].append(one_round(engine, b_body, args.seconds))
    out = {}
    for key, name in (("a", args.a), ("b", args.b)):
        rates, cpus = zip(*results[key])
        out[name] = {"samples_per_s": statistics.median(rates), "cpu_ms_per_request": statistics.median(cpus)}
    ra, rb = out[args.a], out[args.b]
    out["b_over_a"] = {
        "samples_per_s": rb["samples_per_s"] / ra["samples_per_s"],
        "cpu_ms_per_request": rb["cpu_ms_per_request"] / ra["cpu_ms_per_request"],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
