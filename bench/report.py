"""Tables and the target check for bench/serve.py's figures (a dict, also written as JSON), as text
and as the per-host section of docs/PERFORMANCE.md in Markdown. Pure functions of the figures, so a
run's JSON can be rendered again later:

    .venv/bin/python bench/report.py /tmp/figures.json              # the text report
    .venv/bin/python bench/report.py /tmp/figures.json --markdown   # the section for the docs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# issue 7's targets on 2 CPU cores
MIN_RAW_RATIO_1024_NPY = 0.80
MIN_FLOOR_RATIO_N1_C64 = 0.70
MAX_JSON_OVER_NPY_1024 = 3.0
MAX_WORKER_MB = 500
FLAT_TOLERANCE_MB = 10.0  # soak: growth allowed from the first half to the second (allocator noise)
# issue 18's targets, on every host the bench runs on
MIN_BEST_RATIO_1024_NPY = 0.90  # of the best engine and layout on the host (raw_engine.py --compare)
MIN_ROUTE_RATIO_N1_C64 = 0.75  # n = 1 npy req/s over the route floor's, both at c = 64
MAX_CPU_OVER_BASELINE_N1_C64 = 0.5  # ganserve's CPU per n = 1 request over the baseline's, at c = 64


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def raw_limits(f: dict) -> tuple[dict[int, float], dict[int, float]]:
    """({n: samples/s}, {n: CPU ms per run}) of raw onnxruntime: the mean of before and after."""
    before = f.get("raw_before") or {}
    after = f.get("raw_after") or before
    rate = {int(n): (row["ort"] + after[n]["ort"]) / 2 for n, row in before.items() if n in after}
    cpu = {int(n): (row["ort_cpu_ms"] + after[n]["ort_cpu_ms"]) / 2 for n, row in before.items()
           if n in after and "ort_cpu_ms" in row}
    return rate, cpu


def _by_n(d: dict) -> dict[int, float]:
    return {int(n): v for n, v in d.items()}  # JSON keys are strings


def limit_table(f: dict) -> tuple[dict[str, dict[int, float]], dict[str, str]]:
    """({"engine layout": {n: samples/s}}, {engine: why it did not run}) from `raw_engine.py
    --compare --json`, run before and after the load: per engine and layout, the mean of the two."""
    before = (f.get("limits_before") or {}).get("samples_per_s") or {}
    after = (f.get("limits_after") or {}).get("samples_per_s") or before
    table, missing = {}, {}
    for engine, layouts in before.items():
        if not isinstance(layouts, dict):
            missing[engine] = str(layouts)
            continue
        later = after.get(engine) if isinstance(after.get(engine), dict) else {}
        for layout, rates in layouts.items():
            rates_after = _by_n(later.get(layout) or {})
            table[f"{engine} {layout}"] = {n: (r + rates_after[n]) / 2 if n in rates_after else r
                                           for n, r in _by_n(rates).items()}
    return table, missing


def best_limits(f: dict) -> dict[int, dict]:
    """Per n, the fastest engine and layout on the host and its samples/s (mean of before and
    after the load): the limit every "x best" ratio is stated against."""
    table, _ = limit_table(f)
    out: dict[int, dict] = {}
    for name, rates in table.items():
        for n, rate in rates.items():
            if n not in out or rate > out[n]["samples_per_s"]:
                out[n] = {"engine_layout": name, "samples_per_s": rate}
    return dict(sorted(out.items()))


def layout_counts(note: str) -> tuple[int | None, int | None]:
    """(workers, graph threads per worker) from the `layout` of GET /models, as service/service.py
    writes it: "<why: 'GANSERVE_WORKERS=2' or '2 worker(s) for ...'>; <t> graph thread(s) per worker"."""
    workers = re.search(r"GANSERVE_WORKERS=(\d+)|(\d+) worker\(s\)", note)
    threads = re.search(r"(\d+) graph thread", note)
    return (int(workers.group(1) or workers.group(2)) if workers else None,
            int(threads.group(1)) if threads else None)


def served_layout(f: dict) -> str | None:
    """The row of the limit table that is the server's own engine and layout: its backend, with one
    worker per core of one thread ("per_core") or one worker on every core ("all_cores"). Workers
    and threads as the server reported them, else as the bench expected; cores of the host the
    limit was measured on."""
    served, m = f.get("served_on") or {}, f.get("machine") or {}
    workers = served.get("workers") or m.get("workers")
    threads = served.get("graph_threads") or m.get("graph_threads")
    cores = ((f.get("limits_before") or {}).get("host") or {}).get("cores") or m.get("cores")
    if not served.get("backend") or not isinstance(workers, int):
        return None
    if workers == 1 and threads == cores:
        return f"{served['backend']} all_cores"
    if workers == cores and threads == 1:
        return f"{served['backend']} per_core"
    return None


def host_line(f: dict) -> str:
    """CPU model, cores, vector extensions, the load average at the start and end of the run."""
    m = f.get("machine") or {}
    start, end = m.get("load_avg_at_start"), m.get("load_avg_at_end")  # (1, 5, 15 minutes)
    load = f"; load average {_fmt(start and start[0], '.2f')} at the start, {_fmt(end and end[0], '.2f')} at the end"
    vector = "/".join(m.get("vector") or []) or "no AVX"
    remote = f"; the client's host, the server ran at {m['server_url']}" if m.get("server_url") else ""
    return (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {vector}{load}; "
            f"python {m.get('python', '?')}, commit {m.get('commit', '?')}, {m.get('time', '?')}{remote}")


def server_line(f: dict) -> str:
    """How the measured server ran: its layout, backend and provider (from its GET /models)."""
    s = f.get("served_on") or {}
    if not s:
        return "server: not started"
    reason = f" ({s['backend_reason']})" if s.get("backend_reason") else ""
    return (f"server: layout {s.get('layout') or '?'}; backend {s.get('backend') or '?'}{reason}; "
            f"provider {s.get('provider')} ({s.get('device')})")


def print_limits(f: dict) -> None:
    table, missing = limit_table(f)
    if not table:
        print("limit over engines and layouts: not measured (no x best)")
        return
    sizes = sorted({n for rates in table.values() for n in rates})
    ours = served_layout(f)
    print("limit over engines and layouts (raw_engine.py --compare, samples/s, mean of before and after the load):")
    print(f"  {'engine layout':<24} " + " ".join(f"{f'n={n}':>10}" for n in sizes))
    for name, rates in table.items():
        print(f"  {name:<24} " + " ".join(f"{_fmt(rates.get(n)):>10}" for n in sizes)
              + ("   <- the server's engine and layout" if name == ours else ""))
    for engine, why in missing.items():
        print(f"  {engine:<24} not measured: {why}")
    best = best_limits(f).items()
    print("  best: " + ", ".join(f"n={n}: {b['engine_layout']} {b['samples_per_s']:,.0f}" for n, b in best))


def print_grid(f: dict) -> None:
    raw, raw_cpu = raw_limits(f)
    best = best_limits(f)
    base = {(r["n"], r["format"], r["c"]): r for r in f["rows"] if r["target"] == "baseline"}
    print(f"\nhost: {host_line(f)}")
    print(server_line(f))
    print_limits(f)
    print(f"raw onnxruntime, one session of {f.get('raw_threads', '?')} thread(s) (the server's per worker), "
          "samples/s (CPU ms per run): "
          + ", ".join(f"n={n}: {v:,.0f} ({_fmt(raw_cpu.get(n), '.2f')})" for n, v in raw.items()))
    if f.get("raw_before") and f.get("raw_after"):
        print("  before the load: " + ", ".join(f"{r['ort']:,.0f}" for r in f["raw_before"].values())
              + "; after: " + ", ".join(f"{r['ort']:,.0f}" for r in f["raw_after"].values()))
    print("\nganserve, and the hand-written torch baseline at the same point. x best: samples/s over the best engine "
          "and layout's on the host; x raw: over one onnxruntime session's; cpu ms: the server's CPU per request; "
          "x raw cpu: raw's CPU per run over the server's per request")
    print(f"{'n':>5} {'fmt':>4} {'c':>3} {'samples/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>4} "
          f"{'x best':>6} {'x raw':>6} {'cpu ms':>7} {'x raw cpu':>9} {'baseline':>9} {'x base':>7} {'b p99':>8} "
          f"{'b cpu ms':>8} {'wrk cpu':>7}")
    for r in (r for r in f["rows"] if r["target"] == "ganserve"):
        b = base.get((r["n"], r["format"], r["c"])) or {}
        x_best = _div(r["samples_per_s"], (best.get(r["n"]) or {}).get("samples_per_s"))
        print(f"{r['n']:>5} {r['format']:>4} {r['c']:>3} {r['samples_per_s']:>10,.0f} {r['rps']:>8,.1f} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>4} {_fmt(x_best, '.2f'):>6} "
              f"{_fmt(_div(r['samples_per_s'], raw.get(r['n'])), '.2f'):>6} "
              f"{_fmt(r['server_cpu_ms'], '.2f'):>7} {_fmt(_div(raw_cpu.get(r['n']), r['server_cpu_ms']), '.2f'):>9} "
              f"{_fmt(b.get('samples_per_s')):>9} {_fmt(_div(r['samples_per_s'], b.get('samples_per_s')), '.2f'):>7} "
              f"{_fmt(b.get('p99_ms'), '.1f'):>8} {_fmt(b.get('server_cpu_ms'), '.2f'):>8} {r['client_cpu']:>7.0%}")
    print("\nat c=64: GET /livez (server floor), POST /sample rejected with a 400 (route floor), n=1 npy")
    for name, fl in (f.get("floors") or {}).items():
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


def ahead_of_baseline(rows: list[dict]) -> tuple[bool, str] | None:
    """(ganserve served more samples/s than the baseline at every point both ran, the points where
    it did not); None without a baseline."""
    base = {(r["n"], r["format"], r["c"]): r["samples_per_s"] for r in rows if r["target"] == "baseline"}
    if not base:
        return None
    pts = [(r, base[(r["n"], r["format"], r["c"])]) for r in rows
           if r["target"] == "ganserve" and (r["n"], r["format"], r["c"]) in base]
    behind = [f"n={r['n']} {r['format']} c={r['c']} ({_fmt(_div(r['samples_per_s'], b), '.2f')}x)" for r, b in pts
              if r["samples_per_s"] <= b]
    return (not behind, f"behind at {len(behind)} of {len(pts)} points: {', '.join(behind)}" if behind
            else f"ahead at all {len(pts)} points")


def targets_18(f: dict) -> list[tuple[str, bool | None, str]]:
    """Issue 18's targets, checked in one run on every host: (target, met, the figures that decide
    it); met is None where this run did not measure what decides it (and the figures say why)."""
    rows, out = f.get("rows") or [], []
    name = "n=1024 npy >= 90% of the best raw engine and layout on the host"
    best = best_limits(f).get(1024)
    at = max((r for r in rows if r["target"] == "ganserve" and r["n"] == 1024 and r["format"] == "npy"),
             key=lambda r: r["samples_per_s"], default=None)
    if at is None or not best:
        out.append((name, None, "not measured: " + ("no n=1024 npy point in the grid" if at is None
                                                    else "no limit over engines (raw_engine.py --compare)")))
    else:
        ratio = at["samples_per_s"] / best["samples_per_s"]
        why = (f"{at['samples_per_s']:,.0f} at c={at['c']} / {best['samples_per_s']:,.0f} samples/s "
               f"({best['engine_layout']}) = {ratio:.0%}")
        out.append((name, ratio >= MIN_BEST_RATIO_1024_NPY, why))
    ahead = ahead_of_baseline(rows)
    out.append(("ahead of the hand-written baseline at every point of the grid",
                *(ahead if ahead is not None else (None, "not measured: no baseline in this run"))))
    floors = f.get("floors") or {}
    fl, bl = floors.get("ganserve"), floors.get("baseline")
    name = "n=1 c=64 >= 75% of the route floor"
    if fl:
        n1, route = fl["n1"], fl["route"]
        ratio = _div(n1["rps"], route["rps"])
        out.append((name, ratio is not None and ratio >= MIN_ROUTE_RATIO_N1_C64,
                    f"{n1['rps']:,.0f} / {route['rps']:,.0f} req/s = {_fmt(ratio, '.0%')}, {n1['errors']} errors"))
    else:
        out.append((name, None, "not measured: no floors in this run"))
    name = "n=1 c=64 CPU per request <= half the baseline's"
    mine, theirs = (fl or {}).get("n1", {}).get("server_cpu_ms"), (bl or {}).get("n1", {}).get("server_cpu_ms")
    if mine and theirs:
        out.append((name, mine / theirs <= MAX_CPU_OVER_BASELINE_N1_C64,
                    f"{mine:.2f} vs {theirs:.2f} CPU ms per request = {mine / theirs:.2f}x"))
    else:
        out.append((name, None, "not measured: " + ("no baseline in this run" if not bl else
                                                    "no CPU figures (a server not started by the bench)")))
    return out


def targets(f: dict) -> list[tuple[str, bool, str]]:
    """Issue 7's targets: (target, met, the figures that decide it)."""
    rows, (raw, raw_cpu), out = f.get("rows") or [], raw_limits(f), []
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
    ahead = ahead_of_baseline(rows)
    if ahead is not None:
        out.append(("ahead of the hand-written baseline everywhere", *ahead))
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


def _status(met: bool | None) -> str:
    return "met" if met else "not measured" if met is None else "missed"


def print_summary(f: dict) -> None:
    for title, checked in (("issue 18", targets_18(f)), ("issue 7", targets(f))):
        print(f"\ntargets ({title})")
        for name, met, why in checked:
            print(f"  [{ {True: 'met ', False: 'MISS', None: ' -- '}[met]}] {name}: {why}")


def _md_table(header: list[str], rows: list[list[str]], text_columns: set[int] | None = None) -> list[str]:
    """A Markdown table; numbers right-aligned, except in `text_columns` (indices; None: every column)."""
    text = set(range(len(header))) if text_columns is None else text_columns
    align = ["---" if i in text else "---:" for i in range(len(header))]
    return [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|", *(f"| {' | '.join(r)} |" for r in rows)]


def markdown(f: dict) -> str:
    """The per-host section of docs/PERFORMANCE.md: host and server, the limit per engine and
    layout, the grid with x best and x baseline, the floors, and both issues' targets."""
    m, lines = f.get("machine") or {}, []
    vector = "/".join(m.get("vector") or []) or "no AVX"
    title = f"## {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {vector} ({m.get('time', '?')})"
    lines += [title, "", f"Host: {host_line(f)}.", "", f"S{server_line(f)[1:]}.", "",
              f"`{('bench/serve.py ' + f.get('command', '')).strip()}`", ""]
    table, missing = limit_table(f)
    raw, _ = raw_limits(f)
    best = best_limits(f)
    sizes = sorted({n for rates in table.values() for n in rates} | set(raw))
    if table or raw:
        ours = served_layout(f)
        source = ("`bench/raw_engine.py --compare`; per_core: one single-threaded session per core in as many "
                  "processes at once" if table else "the limit over engines and layouts was not measured in this run: "
                  "no x best")
        italics = "; the server's own engine and layout in italics" if ours in table else ""
        lines.append("The limit: the generator alone on pre-drawn latents, samples/s, mean of before and after the "
                     f"load ({source}){italics}:")
        lines.append("")
        rows = [[f"*{name}*" if name == ours else name, *(_fmt(rates.get(n)) for n in sizes)]
                for name, rates in table.items()]
        rows += [[f"{engine}: not measured ({why})", *("-" for _ in sizes)] for engine, why in missing.items()]
        if raw:
            rows.append([f"onnxruntime, one session of {f.get('raw_threads', '?')} thread(s) (x raw)",
                         *(_fmt(raw.get(n)) for n in sizes)])
        if best:
            rows.append(["**best**", *(f"{b['samples_per_s']:,.0f} ({b['engine_layout']})" if (b := best.get(n))
                                       else "-" for n in sizes)])
        lines += _md_table(["engine layout", *(f"n = {n}" for n in sizes)], rows, text_columns={0}) + [""]
        peak = (f.get("limits_before") or {}).get("sgemm_gflops")
        mflop = (f.get("limits_before") or {}).get("mflop_per_sample")
        if peak and mflop and best:
            n_top = max(best)
            gflops = best[n_top]["samples_per_s"] * mflop / 1e3
            lines += [(f"sgemm peak (torch, all cores, before the load): {peak:,.1f} GFLOP/s; at {mflop:.2f} MFLOP "
                       f"a sample the best at n = {n_top} runs {gflops:,.1f} GFLOP/s = {gflops / peak:.0%} of it."), ""]
    base = {(r["n"], r["format"], r["c"]): r for r in f.get("rows") or [] if r["target"] == "baseline"}
    grid = []
    for r in (r for r in f.get("rows") or [] if r["target"] == "ganserve"):
        b = base.get((r["n"], r["format"], r["c"])) or {}
        grid.append([str(r["n"]), r["format"], str(r["c"]), _fmt(r["samples_per_s"]), _fmt(r["rps"], ",.1f"),
                     _fmt(r["p50_ms"], ",.1f"), _fmt(r["p99_ms"], ",.1f"), str(r["errors"]),
                     _fmt(_div(r["samples_per_s"], (best.get(r["n"]) or {}).get("samples_per_s")), ".2f"),
                     _fmt(_div(r["samples_per_s"], raw.get(r["n"])), ".2f"), _fmt(r["server_cpu_ms"], ".2f"),
                     _fmt(b.get("samples_per_s")), _fmt(_div(r["samples_per_s"], b.get("samples_per_s")), ".2f"),
                     _fmt(b.get("p99_ms"), ",.1f"), _fmt(b.get("server_cpu_ms"), ".2f")])
    if grid:
        header = ["n", "fmt", "c", "ganserve samples/s", "req/s", "p50 ms", "p99 ms", "err", "x best", "x raw",
                  "cpu ms/req", "baseline samples/s", "x baseline", "baseline p99 ms", "baseline cpu ms/req"]
        lines += _md_table(header, grid, text_columns={1})
        lines.append("")
    for name, fl in (f.get("floors") or {}).items():
        lines.append(f"Floors at c = 64, {name}: `/livez` {fl['livez']['rps']:,.0f} req/s "
                     f"({_fmt(fl['livez']['server_cpu_ms'], '.2f')} CPU ms), rejected `/sample` (the route floor) "
                     f"{fl['route']['rps']:,.0f} req/s ({_fmt(fl['route']['server_cpu_ms'], '.2f')} ms), n = 1 npy "
                     f"{fl['n1']['rps']:,.0f} req/s ({_fmt(fl['n1']['server_cpu_ms'], '.2f')} ms, p99 "
                     f"{fl['n1']['p99_ms']:.1f} ms, {fl['n1']['errors']} errors).")
    workers = {k: v for k, v in (f.get("memory_peak_mb") or {}).items() if k.startswith("worker")}
    if workers:
        lines.append(f"Peak RSS per worker: {', '.join(f'{k} {v:,.0f} MB' for k, v in sorted(workers.items()))}.")
    for title, checked in (("issue 18", targets_18(f)), ("issue 7", targets(f))):
        lines += ["", f"Targets ({title}):", ""]
        lines += _md_table(["target", "status", "figures"],
                           [[name, f"**{_status(met)}**", why.removeprefix("not measured: ")]
                            for name, met, why in checked])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="render a bench/serve.py --out JSON again")
    p.add_argument("figures", type=Path, help="the JSON that `bench/serve.py --out` wrote")
    p.add_argument("--markdown", action="store_true", help="the per-host section for docs/PERFORMANCE.md")
    args = p.parse_args(argv)
    f = json.loads(args.figures.read_text())
    if args.markdown:
        print(markdown(f), end="")
    elif "rows" in f:
        print_grid(f)
        print_summary(f)
    else:  # an --only-batching run
        print(f"host: {host_line(f)}")
        print_batching(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
