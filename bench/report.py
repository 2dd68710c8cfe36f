"""Tables and the target check for bench/serve.py's figures (a dict, also written as JSON)."""

from __future__ import annotations

# issue 7's targets on 2 CPU cores
MIN_RAW_RATIO_1024_NPY = 0.80
MIN_FLOOR_RATIO_N1_C64 = 0.70
MAX_JSON_OVER_NPY_1024 = 3.0
MAX_WORKER_MB = 500
FLAT_TOLERANCE_MB = 10.0  # soak: growth allowed from the first half to the second (allocator noise)


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def raw_limits(f: dict) -> tuple[dict[int, float], dict[int, float]]:
    """({n: samples/s}, {n: CPU ms per run}) of raw onnxruntime: the mean of before and after."""
    before, after = f.get("raw_before") or {}, f.get("raw_after") or before
    rate = {int(n): (row["ort"] + after[n]["ort"]) / 2 for n, row in before.items() if n in after}
    cpu = {int(n): (row["ort_cpu_ms"] + after[n]["ort_cpu_ms"]) / 2 for n, row in before.items()
           if n in after and "ort_cpu_ms" in row}
    return rate, cpu


def print_grid(f: dict) -> None:
    raw, raw_cpu = raw_limits(f)
    base = {(r["n"], r["format"], r["c"]): r for r in f["rows"] if r["target"] == "baseline"}
    print(f"\nmachine: {f['machine']}")
    print("raw onnxruntime, samples/s (CPU ms per run): "
          + ", ".join(f"n={n}: {v:,.0f} ({_fmt(raw_cpu.get(n), '.2f')})" for n, v in raw.items()))
    if f.get("raw_before") and f.get("raw_after"):
        print("  before the load: " + ", ".join(f"{r['ort']:,.0f}" for r in f["raw_before"].values())
              + "; after: " + ", ".join(f"{r['ort']:,.0f}" for r in f["raw_after"].values()))
    print("\nganserve, and the hand-written torch baseline at the same point. x raw: samples/s over raw onnxruntime's; "
          "cpu ms: the server's CPU per request; x raw cpu: raw's CPU per run over the server's per request")
    print(f"{'n':>5} {'fmt':>4} {'c':>3} {'samples/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>4} "
          f"{'x raw':>6} {'cpu ms':>7} {'x raw cpu':>9} {'baseline':>9} {'x base':>7} {'b p99':>8} {'b cpu ms':>8} {'wrk cpu':>7}")
    for r in (r for r in f["rows"] if r["target"] == "ganserve"):
        b = base.get((r["n"], r["format"], r["c"])) or {}
        print(f"{r['n']:>5} {r['format']:>4} {r['c']:>3} {r['samples_per_s']:>10,.0f} {r['rps']:>8,.1f} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>4} {_fmt(_div(r['samples_per_s'], raw.get(r['n'])), '.2f'):>6} "
              f"{_fmt(r['server_cpu_ms'], '.2f'):>7} {_fmt(_div(raw_cpu.get(r['n']), r['server_cpu_ms']), '.2f'):>9} "
              f"{_fmt(b.get('samples_per_s')):>9} {_fmt(_div(r['samples_per_s'], b.get('samples_per_s')), '.2f'):>7} "
              f"{_fmt(b.get('p99_ms'), '.1f'):>8} {_fmt(b.get('server_cpu_ms'), '.2f'):>8} {r['client_cpu']:>7.0%}")
    print("\nat c=64: GET /livez (server floor), POST /sample rejected with a 400 (route floor), n=1 npy")
    for name, fl in f["floors"].items():
        parts = [f"{k} {v['rps']:,.0f} req/s, p99 {v['p99_ms']:.1f} ms, {_fmt(v['server_cpu_ms'], '.2f')} cpu-ms, "
                 f"wrk cpu {v['client_cpu']:.0%}" for k, v in fl.items()]
        print(f"  {name:>9}: " + "; ".join(parts))
        print(f"  {'':>9}  n=1 / livez = {_fmt(_div(fl['n1']['rps'], fl['livez']['rps']), '.2f')}, "
              f"n=1 / route floor = {_fmt(_div(fl['n1']['rps'], fl['route']['rps']), '.2f')}, {fl['n1']['errors']} errors")
    print_batching(f)
    if f.get("memory_peak_mb"):
        print("\npeak RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["memory_peak_mb"].items())))
    if f.get("soak_worker_mb"):
        print("soak, workers' RSS after each identical piece (MB): " + " ".join(f"{v:.0f}" for v in f["soak_worker_mb"]))


def print_batching(f: dict) -> None:
    """The micro-batcher's effect at n = 1 npy c = 64 (bench/probes.py: batching_variants)."""
    variants = f.get("batching") or {}
    if not variants:
        return
    print("\nmicro-batching, n=1 npy c=64, a server per variant, measured in turn (median round by req/s; every round's "
          "req/s / p99 ms after it)")
    for name, r in variants.items():
        rounds = " ".join(f"{x['rps']:,.0f}/{x['p99_ms']:.0f}" for x in r.get("rounds", []))
        print(f"  {name:>38}: {r['rps']:>6,.0f} req/s, {_fmt(r['server_cpu_ms'], '.2f')} cpu-ms, p50 {r['p50_ms']:.1f} ms, "
              f"p99 {r['p99_ms']:.1f} ms, {r['errors']} errors   [{rounds}]")
    on = next((r for k, r in variants.items() if k.startswith("batching on") and "default" in k), None)
    off = next((r for k, r in variants.items() if k.startswith("batching off")), None)
    if on and off:
        print(f"  off / on: req/s {_fmt(_div(off['rps'], on['rps']), '.2f')}, p99 {_fmt(_div(off['p99_ms'], on['p99_ms']), '.2f')}, "
              f"cpu-ms {_fmt(_div(off['server_cpu_ms'], on['server_cpu_ms']), '.2f')}")


def _best(rows: list[dict], target: str, n: int, fmt: str) -> float | None:
    got = [r["samples_per_s"] for r in rows if r["target"] == target and r["n"] == n and r["format"] == fmt]
    return max(got) if got else None


def soak_growth(series: list[float]) -> float | None:
    """The highest RSS of the second half minus that of the first (the first piece is warm-up)."""
    if len(series) < 4:
        return None
    warm = series[1:]
    half = len(warm) // 2
    return max(warm[half:]) - max(warm[:half])


def targets(f: dict) -> list[tuple[str, bool, str]]:
    """(target, met, the figures that decide it)."""
    rows, (raw, raw_cpu), out = f["rows"], raw_limits(f), []
    npy, json_ = _best(rows, "ganserve", 1024, "npy"), _best(rows, "ganserve", 1024, "json")
    if npy and 1024 in raw:
        cpu = [r["server_cpu_ms"] for r in rows if r["target"] == "ganserve" and r["n"] == 1024 and r["format"] == "npy"
               and r["server_cpu_ms"]]
        cpu_note = f"; by CPU per request {raw_cpu[1024] / min(cpu):.0%}" if cpu and 1024 in raw_cpu else ""
        out.append(("n=1024 npy >= 80% of raw onnxruntime", npy / raw[1024] >= MIN_RAW_RATIO_1024_NPY,
                    f"{npy:,.0f} / {raw[1024]:,.0f} samples/s = {npy / raw[1024]:.0%}{cpu_note}"))
    fl = f.get("floors", {}).get("ganserve")
    if fl:
        n1, livez, route = fl["n1"], fl["livez"], fl["route"]
        ratio = _div(n1["rps"], livez["rps"]) or 0.0
        out.append(("n=1 c=64: no errors, >= 70% of the HTTP floor (/livez)",
                    n1["errors"] == 0 and ratio >= MIN_FLOOR_RATIO_N1_C64,
                    f"{n1['rps']:,.0f} / {livez['rps']:,.0f} req/s = {ratio:.0%}, {n1['errors']} errors "
                    f"(route floor {route['rps']:,.0f} req/s: {_fmt(_div(n1['rps'], route['rps']), '.0%')})"))
    if npy and json_ is not None:
        slower = npy / json_ if json_ else float("inf")
        out.append(("json at n=1024 <= 3x slower than npy", slower <= MAX_JSON_OVER_NPY_1024,
                    f"npy {npy:,.0f} vs json {json_:,.0f} samples/s = {slower:.2f}x"))
    base = {(r["n"], r["format"], r["c"]): r["samples_per_s"] for r in rows if r["target"] == "baseline"}
    if base:
        pts = [(r, base[(r["n"], r["format"], r["c"])]) for r in rows
               if r["target"] == "ganserve" and (r["n"], r["format"], r["c"]) in base]
        behind = [f"n={r['n']} {r['format']} c={r['c']} ({_fmt(_div(r['samples_per_s'], b), '.2f')}x)" for r, b in pts
                  if r["samples_per_s"] <= b]
        out.append(("ahead of the hand-written baseline everywhere", not behind,
                    f"behind at {len(behind)} of {len(pts)} points: {', '.join(behind)}" if behind
                    else f"ahead at all {len(pts)} points"))
    workers = {k: v for k, v in (f.get("memory_peak_mb") or {}).items() if k.startswith("worker")}
    if workers:
        peak = max(workers.values())
        out.append(("peak RSS < 500 MB per worker", peak < MAX_WORKER_MB, f"{peak:.0f} MB"))
    series = f.get("soak_worker_mb") or []
    growth = soak_growth(series)
    if growth is not None:
        out.append(("RSS flat over the soak", growth <= FLAT_TOLERANCE_MB,
                    f"{series[0]:.0f} -> {series[-1]:.0f} MB over {len(series)} pieces; "
                    f"second half's peak minus the first's: {growth:+.1f} MB"))
    return out


def print_summary(f: dict) -> None:
    print("\ntargets (issue 7)")
    for name, met, why in targets(f):
        print(f"  [{'met ' if met else 'MISS'}] {name}: {why}")
