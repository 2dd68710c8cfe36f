"""A load ramp on one pod's worth of ganserve: does the autoscaling signal rise before p99 breaks?

    .venv/bin/python bench/ramp.py --models-dir models            # n = 1 npy, c = 1 .. 128
    .venv/bin/python bench/ramp.py --models-dir models --n 64 --steps 1 2 4 8 16 32

One server as deploy/k8s runs it (GANSERVE_WORKERS=1, the pod's admission limits), then wrk at
rising concurrency, a few seconds a step, while a thread reads /metrics every 0.2 s for the
signal the autoscalers read: `ganserve_inflight_requests + ganserve_queued_requests` (work
waiting per pod; docs/DEPLOYMENT.md "Which signal scales it"). Printed per step: req/s, p50, p99,
503s, and the signal's mean and peak. p99 "breaks" at the first step whose p99 passes --slo-ms
or 3x the first step's; the target the autoscaler should hold is the signal's mean at the last
step before that, which DEPLOYMENT.md compares with its configured 8.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import httpx
from tqdm import tqdm

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

import host  # noqa: E402
from load import require_wrk, run_wrk, settle  # noqa: E402
from servers import start_ganserve  # noqa: E402

from tests.servers import metric_sum  # noqa: E402

SIGNAL = ("ganserve_inflight_requests", "ganserve_queued_requests")


def signal_value(text: str) -> float:
    return sum(metric_sum(text, name) for name in SIGNAL)


class SignalSampler:
    """Reads the signal from /metrics every `every_s` seconds while a step runs."""

    def __init__(self, url: str, every_s: float = 0.2):
        self.url, self.every_s = url, every_s
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.wait(self.every_s):
                try:
                    self.values.append(signal_value(http.get(self.url + "/metrics").text))
                except httpx.HTTPError:
                    pass

    def __enter__(self) -> SignalSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--n", type=int, default=1, help="samples per request")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128], help="concurrencies")
    parser.add_argument("--seconds", type=float, default=6.0, help="per step")
    parser.add_argument("--slo-ms", type=float, default=100.0, help="p99 above this breaks")
    args = parser.parse_args()
    require_wrk()
    print(f"host: {host.describe()}")
    body = {"model": args.model, "n": args.n, "format": "npy"}
    with tempfile.TemporaryDirectory() as logs:
        # One worker, the admission limits a pod runs with (deploy/k8s/base: the defaults).
        server = start_ganserve(args.models_dir.resolve(), Path(logs), {"GANSERVE_WORKERS": "1"})
        try:
            url = server.url
            run_wrk(url + "/sample", 4, 2, body)  # warm-up
            settle(url + "/sample", body)
            rows = []
            for c in tqdm(args.steps, desc="ramp", unit="step"):
                with SignalSampler(url) as sampler:
                    result = run_wrk(url + "/sample", c, args.seconds, body)
                settle(url + "/sample", body)
                values = sampler.values or [0.0]
                rows.append((c, result, statistics.mean(values), max(values)))
        finally:
            server.stop()
    base_p99 = rows[0][1].p99_ms
    limit = min(args.slo_ms, 3 * base_p99)
    broke = next((c for c, r, _, _ in rows if r.p99_ms > limit), None)
    print(f"\n{args.model} n = {args.n} npy, {args.seconds:g} s a step; p99 breaks above {limit:.1f} ms")
    print("| c | req/s | p50 ms | p99 ms | 503s | signal mean | signal peak |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for c, r, mean, peak in rows:
        mark = " (breaks)" if c == broke else ""
        print(f"| {c}{mark} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {mean:.1f} | {peak:.0f} |")
    held = [mean for c, _, mean, _ in rows if broke is None or c < broke]
    print(
        f"p99 broke at c = {broke}; the signal's mean at the last step before: {held[-1]:.1f}"
        if broke
        else "p99 held at every step"
    )
    print(f"host at the end: {host.describe()}")


if __name__ == "__main__":
    main()
