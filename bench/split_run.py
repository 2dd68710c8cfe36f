"""One large graph run split into halves run at once on 1-thread execution, against one run on a
2-thread session: per-core data parallelism inside one worker instead of intra-op threading
(issue 29; docs/PERFORMANCE.md#finding-split-run).

    .venv/bin/python bench/split_run.py                 # mnist's G, n = 1024 256 64, 15 rounds (~3 min)
    .venv/bin/python bench/split_run.py --n 1024 --rounds 30 --seconds 0.3

In one process, with the service's session options (providers.serving_options: no spinning,
sequential, the CPU arena as the settings say) and its allocator environment (memory.ALLOCATOR_ENV:
the script re-executes itself with it when it is missing), for each n:
- `a_2thread`: one session with 2 intra-op threads runs all n rows (what a worker does today);
- `b_1sess_2calls`: one 1-thread session, two Python threads each running n/2 rows at once
  (onnxruntime's Run releases the GIL; one InferenceSession may be run from several threads);
- `c_2sess`: two 1-thread sessions, one n/2 run each at once;
- `d_1thread`: one 1-thread session running all n rows (one core's rate, for reference);
- `e_2thread_2calls`: the 2-thread session of a_2thread, two n/2 runs at once (3 threads, 2 cores);
- `f_splitruns`: b as the engine runs it, backends.SplitRuns (GANSERVE_SPLIT_ROWS) over the
  2-thread and the 1-thread session, every n here split.
A split runs one half on the calling thread and the other on a pool thread, as a worker's run
thread would. Variants are interleaved in rotated order over the rounds, `--seconds` each, so
that whatever else the host does falls on all alike; printed: samples/s median (min-max) over the
rounds and CPU ms per run (this process, onnxruntime's threads included), each variant over
a_2thread at the same n (ratio of the medians, and median of the per-round ratios: each round's
variants ran back to back, so on a shared host the paired figure is the steadier one), and the
host with its load average at the start and the end. Before timing, the halves' concatenation is
checked bit-identical (np.array_equal) to an unsplit run on the 1-thread and the 2-thread session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from service.runtime.memory import ALLOCATOR_ENV  # noqa: E402

if any(os.environ.get(k) != v for k, v in ALLOCATOR_ENV.items()) and "--no-allocator-env" not in sys.argv:
    # glibc reads these at start-up only: run again with the server's allocator environment.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ALLOCATOR_ENV})

import host  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from models.card import load_model_folder  # noqa: E402
from service.core import latents  # noqa: E402
from service.runtime import backends  # noqa: E402
from service.runtime.providers import CPU, serving_options  # noqa: E402

VARIANTS = ("a_2thread", "b_1sess_2calls", "c_2sess", "d_1thread", "e_2thread_2calls", "f_splitruns")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 256, 64])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.5, help="per variant, n and round")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-allocator-env", action="store_true", help="glibc's default allocator settings")
    args = parser.parse_args()

    card, paths = load_model_folder(args.models_dir / args.model)
    sig = card.expected_signature("generator")
    z_name, x_name = sig.inputs[0].name, sig.outputs[0].name
    graph = str(paths["generator"])
    s2 = ort.InferenceSession(graph, serving_options(2), providers=[CPU])
    s1 = ort.InferenceSession(graph, serving_options(1), providers=[CPU])
    s1b = ort.InferenceSession(graph, serving_options(1), providers=[CPU])
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="split-half")
    engine_split = backends.SplitRuns(s2, s1, backends.Splitter(parts=2, min_rows=min(args.n)))

    def split(first, second, z: np.ndarray) -> np.ndarray:
        half = len(z) // 2
        other = pool.submit(second.run, [x_name], {z_name: z[half:]})
        mine = first.run([x_name], {z_name: z[:half]})[0]
        return np.concatenate([mine, other.result()[0]])

    def calls(z: np.ndarray) -> dict:
        return {
            "a_2thread": lambda: s2.run([x_name], {z_name: z})[0],
            "b_1sess_2calls": lambda: split(s1, s1, z),
            "c_2sess": lambda: split(s1, s1b, z),
            "d_1thread": lambda: s1.run([x_name], {z_name: z})[0],
            "e_2thread_2calls": lambda: split(s2, s2, z),
            "f_splitruns": lambda: engine_split.run([x_name], {z_name: z})[0],
        }

    load_start = os.getloadavg()
    print(
        f"host: {host.describe()}; load average 1/5/15 min {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}"
    )
    print(
        f"onnxruntime {ort.__version__}, {graph}, serving_options (no spinning), "
        f"allocator env {'glibc defaults' if args.no_allocator_env else ALLOCATOR_ENV}; "
        f"{args.rounds} rounds x {args.seconds} s a variant"
    )

    z_by_n = {n: latents.draw(latents.generator(n), card.latent, n) for n in args.n}
    for n, z in z_by_n.items():  # bit-identical check, and warm-up
        whole1, whole2 = s1.run([x_name], {z_name: z})[0], s2.run([x_name], {z_name: z})[0]
        b, c, f = split(s1, s1, z), split(s1, s1b, z), engine_split.run([x_name], {z_name: z})[0]
        same = {
            "f==1thread": np.array_equal(f, whole1),
            "b==1thread": np.array_equal(b, whole1),
            "c==1thread": np.array_equal(c, whole1),
            "2thread==1thread": np.array_equal(whole2, whole1),
            "b==2thread": np.array_equal(b, whole2),
        }
        diff = float(np.max(np.abs(b - whole2)))
        print(f"n={n}: bit-identical {same}; max |split - 2thread| {diff:.3g}")

    rates: dict[int, dict[str, list[float]]] = {n: {v: [] for v in VARIANTS} for n in args.n}
    cpu: dict[int, dict[str, list[float]]] = {n: {v: [] for v in VARIANTS} for n in args.n}
    for r in range(args.rounds):
        for n, z in z_by_n.items():
            fns = calls(z)
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for v in order:
                fn = fns[v]
                fn()
                k, t0, c0 = 0, time.perf_counter(), time.process_time()
                while k < 3 or time.perf_counter() - t0 < args.seconds:
                    fn()
                    k += 1
                wall, used = time.perf_counter() - t0, time.process_time() - c0
                rates[n][v].append(n * k / wall)
                cpu[n][v].append(1000 * used / k)
        print(f"round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)

    load_end = os.getloadavg()
    print()
    print("| n | variant | samples/s median (min-max) | x a_2thread: medians / per round | CPU ms a run |")
    print("|---:|---|---|---:|---:|")
    figures = {}
    for n in args.n:
        base = statistics.median(rates[n]["a_2thread"])
        figures[n] = {}
        for v in VARIANTS:
            med = statistics.median(rates[n][v])
            paired = statistics.median(x / a for x, a in zip(rates[n][v], rates[n]["a_2thread"]))
            figures[n][v] = {"samples_per_s": rates[n][v], "cpu_ms": cpu[n][v], "median": med, "paired": paired}
            print(
                f"| {n} | {v} | {med:,.0f} ({min(rates[n][v]):,.0f}-{max(rates[n][v]):,.0f}) "
                f"| {med / base:.3f} / {paired:.3f} | {statistics.median(cpu[n][v]):.2f} |"
            )
    # Per round ratios (each round's variants ran back to back): steadier than ratios of medians.
    print()
    for n in args.n:
        for v in VARIANTS[1:]:
            per_round = [x / a for x, a in zip(rates[n][v], rates[n]["a_2thread"])]
            print(f"n={n} {v}/a_2thread per round: {' '.join(f'{x:.3f}' for x in per_round)}")
    print(f"\nload average 1/5/15 min at the end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"host": host.cpu(), "load": [load_start, load_end], "figures": figures}))
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
