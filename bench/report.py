"""Tables and the target check for bench/serve.py's figures (a dict, also written as JSON)."""

from __future__ import annotations

# issue 7's targets on 2 CPU cores
MIN_RAW_RATIO_1024_NPY = 0.80
MIN_FLOOR_RATIO_N1_C64 = 0.70
MAX_JSON_OVER_NPY_1024 = 3.0
MAX_WORKER_MB = 500
FLAT_TOLERANCE_MB = 10.0  # soak: growth allowed after the first piece (allocator noise)


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def print_grid(f: dict) -> None:
    raw = f.get("raw") or {}
    base = {(r["n"], r["format"], r["c"]): r for r in f["rows"] if r["target"] == "baseline"}
    print(f"\nmachine: {f['machine']}")
    print("raw onnxruntime (samples/s): " + ", ".join(f"n={n}: {v:,.0f}" for n, v in raw.items()))
    if f.get("raw_before"):
        print("  before the load: " + ", ".join(f"{v:,.0f}" for v in f["raw_before"].values())
              + "; after: " + ", ".join(f"{v:,.0f}" for v in f["raw_after"].values()))
    head = f"{'n':>5} {'fmt':>4} {'c':>3} {'samples/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>4} " \
           f"{'x raw':>6} {'baseline':>9} {'x base':>7} {'b p99':>8} {'wrk cpu':>7}"
    print("\nganserve (and the hand-written torch baseline at the same point)")
    print(head)
    for r in (r for r in f["rows"] if r["target"] == "ganserve"):
        b = base.get((r["n"], r["format"], r["c"]))
        ratio = r["samples_per_s"] / raw[r["n"]] if r["n"] in raw else None
        vs = r["samples_per_s"] / b["samples_per_s"] if b and b["samples_per_s"] else None
        print(f"{r['n']:>5} {r['format']:>4} {r['c']:>3} {r['samples_per_s']:>10,.0f} {r['rps']:>8,.1f} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>4} {_fmt(ratio, '.2f'):>6} "
              f"{_fmt(b and b['samples_per_s']):>9} {_fmt(vs, '.2f'):>7} {_fmt(b and b['p99_ms'], '.1f'):>8} "
              f"{r['client_cpu']:>7.0%}")
    print("\nHTTP floor (GET /livez) and n=1 npy, both at c=64")
    for name, fl in f["floors"].items():
        small = fl["n1_c64_npy"]
        print(f"  {name:>9}: floor {fl['rps']:,.0f} req/s (p99 {fl['p99_ms']:.1f} ms, wrk cpu {fl['client_cpu']:.0%}); "
              f"n=1 {small['rps']:,.0f} req/s = {_fmt(small['rps'] / fl['rps'] if fl['rps'] else None, '.2f')} of it, p99 {small['p99_ms']:.1f} ms, "
              f"{small['errors']} errors")
    off = f.get("batching_off")
    if off:
        for fmt, r in off.items():
            print(f"  batching off, n=1 {fmt} c=64: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms, {r['errors']} errors")
    print(f"\npeak RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["memory_peak_mb"].items())))
    if f.get("soak_worker_mb"):
        print("soak, workers' RSS after each 20 s piece (MB): " + " ".join(f"{v:.0f}" for v in f["soak_worker_mb"]))


def _best(rows: list[dict], target: str, n: int, fmt: str) -> float | None:
    got = [r["samples_per_s"] for r in rows if r["target"] == target and r["n"] == n and r["format"] == fmt]
    return max(got) if got else None


def targets(f: dict) -> list[tuple[str, bool | None, str]]:
    """(target, met (None: not measured), the figures that decide it)."""
    rows, raw, out = f["rows"], f.get("raw") or {}, []
    npy, json_ = _best(rows, "ganserve", 1024, "npy"), _best(rows, "ganserve", 1024, "json")
    if npy and 1024 in raw:
        ratio = npy / raw[1024]
        out.append(("n=1024 npy >= 80% of raw onnxruntime", ratio >= MIN_RAW_RATIO_1024_NPY,
                    f"{npy:,.0f} / {raw[1024]:,.0f} samples/s = {ratio:.0%}"))
    fl = f["floors"].get("ganserve")
    if fl:
        small = fl["n1_c64_npy"]
        ratio = small["rps"] / fl["rps"] if fl["rps"] else 0.0
        out.append(("n=1 c=64: no errors, >= 70% of the HTTP floor",
                    small["errors"] == 0 and ratio >= MIN_FLOOR_RATIO_N1_C64,
                    f"{small['rps']:,.0f} / {fl['rps']:,.0f} req/s = {ratio:.0%}, {small['errors']} errors"))
    if npy and json_ is not None:
        slower = npy / json_ if json_ else float("inf")
        out.append(("json at n=1024 <= 3x slower than npy", slower <= MAX_JSON_OVER_NPY_1024,
                    f"npy {npy:,.0f} vs json {json_:,.0f} samples/s = {slower:.2f}x"))
    base = {(r["n"], r["format"], r["c"]): r["samples_per_s"] for r in rows if r["target"] == "baseline"}
    if base:
        pts = [(r, base[(r["n"], r["format"], r["c"])]) for r in rows
               if r["target"] == "ganserve" and (r["n"], r["format"], r["c"]) in base]
        behind = [f"n={r['n']} {r['format']} c={r['c']} ({_fmt(r['samples_per_s'] / b if b else None, '.2f')}x)" for r, b in pts
                  if r["samples_per_s"] <= b]
        out.append(("ahead of the hand-written baseline everywhere", not behind,
                    f"behind at {', '.join(behind)}" if behind else f"ahead at all {len(pts)} points"))
    workers = {k: v for k, v in f["memory_peak_mb"].items() if k.startswith("worker")}
    if workers:
        peak = max(workers.values())
        out.append(("peak RSS < 500 MB per worker", peak < MAX_WORKER_MB, f"{peak:.0f} MB"))
    soak = f.get("soak_worker_mb")
    if soak and len(soak) >= 3:
        growth = max(soak[1:]) - soak[1]  # from after the first piece (warm) to the highest later value
        out.append(("RSS flat over the soak", growth <= FLAT_TOLERANCE_MB,
                    f"{soak[0]:.0f} -> {soak[-1]:.0f} MB over {len(soak)} pieces, growth after warm-up {growth:.1f} MB"))
    return out


def print_summary(f: dict) -> None:
    print("\ntargets (issue 7)")
    for name, met, why in targets(f):
        print(f"  [{'met ' if met else 'MISS'}] {name}: {why}")
