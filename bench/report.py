"""Tables and the target check for bench/serve.py's figures (a dict, also written as JSON), as text
and as a run's Markdown for docs/perf-log/ (one file per run, docs/perf-log/README.md). Pure
functions of the figures, so a run's JSON can be rendered again later:

    .venv/bin/python bench/report.py /tmp/figures.json              # the text report
    .venv/bin/python bench/report.py /tmp/figures.json --markdown   # the run's page for docs/perf-log/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # figures.py and targets.py beside this file

from figures import (  # noqa: F401 (limit_table, best_limits, layout_counts, served_layout: bench's API)
    _div,
    _fmt,
    best_limits,
    layout_counts,
    limit_table,
    raw_limits,
    served_layout,
)
from peer_figures import peers_markdown, targets_29
from targets import _status, ahead_of_baseline, soak_growth, targets, targets_18  # noqa: F401


def host_line(f: dict) -> str:
    """CPU model, cores, vector extensions, the load average at the start and end of the run."""
    m = f.get("machine") or {}
    start, end = m.get("load_avg_at_start"), m.get("load_avg_at_end")  # (1, 5, 15 minutes)
    load = f"; load average {_fmt(start and start[0], '.2f')} at the start, {_fmt(end and end[0], '.2f')} at the end"
    vector = "/".join(m.get("vector") or []) or "no AVX"
    remote = f"; the client's host, the server ran at {m['server_url']}" if m.get("server_url") else ""
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {vector}{load}; "
        f"python {m.get('python', '?')}, commit {m.get('commit', '?')}, {m.get('time', '?')}{remote}"
    )


def server_line(f: dict) -> str:
    """How the measured server ran: its layout, backend and provider (from its GET /models)."""
    s = f.get("served_on") or {}
    if not s:
        return "server: not started"
    reason = f" ({s['backend_reason']})" if s.get("backend_reason") else ""
    return (
        f"server: layout {s.get('layout') or '?'}; backend {s.get('backend') or '?'}{reason}; "
        f"provider {s.get('provider')} ({s.get('device')})"
    )


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
        print(
            f"  {name:<24} "
            + " ".join(f"{_fmt(rates.get(n)):>10}" for n in sizes)
            + ("   <- the server's engine and layout" if name == ours else "")
        )
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
    print(
        f"raw onnxruntime, one session of {f.get('raw_threads', '?')} thread(s) (the server's per worker), "
        "samples/s (CPU ms per run): "
        + ", ".join(f"n={n}: {v:,.0f} ({_fmt(raw_cpu.get(n), '.2f')})" for n, v in raw.items())
    )
    if f.get("raw_before") and f.get("raw_after"):
        print(
            "  before the load: "
            + ", ".join(f"{r['ort']:,.0f}" for r in f["raw_before"].values())
            + "; after: "
            + ", ".join(f"{r['ort']:,.0f}" for r in f["raw_after"].values())
        )
    print(
        "\nganserve, and the hand-written torch baseline at the same point. x best: samples/s over the best engine "
        "and layout's on the host; x raw: over one onnxruntime session's; cpu ms: the server's CPU per request; "
        "x raw cpu: raw's CPU per run over the server's per request"
    )
    print(
        f"{'n':>5} {'fmt':>4} {'c':>3} {'samples/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>4} "
        f"{'x best':>6} {'x raw':>6} {'cpu ms':>7} {'x raw cpu':>9} {'baseline':>9} {'x base':>7} {'b p99':>8} "
        f"{'b cpu ms':>8} {'wrk cpu':>7}"
    )
    for r in (r for r in f["rows"] if r["target"] == "ganserve"):
        b = base.get((r["n"], r["format"], r["c"])) or {}
        x_best = _div(r["samples_per_s"], (best.get(r["n"]) or {}).get("samples_per_s"))
        print(
            f"{r['n']:>5} {r['format']:>4} {r['c']:>3} {r['samples_per_s']:>10,.0f} {r['rps']:>8,.1f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>4} {_fmt(x_best, '.2f'):>6} "
            f"{_fmt(_div(r['samples_per_s'], raw.get(r['n'])), '.2f'):>6} "
            f"{_fmt(r['server_cpu_ms'], '.2f'):>7} {_fmt(_div(raw_cpu.get(r['n']), r['server_cpu_ms']), '.2f'):>9} "
            f"{_fmt(b.get('samples_per_s')):>9} {_fmt(_div(r['samples_per_s'], b.get('samples_per_s')), '.2f'):>7} "
            f"{_fmt(b.get('p99_ms'), '.1f'):>8} {_fmt(b.get('server_cpu_ms'), '.2f'):>8} {r['client_cpu']:>7.0%}"
        )
    print("\nat c=64: GET /livez (server floor), POST /sample rejected with a 400 (route floor), n=1 npy")
    for name, fl in (f.get("floors") or {}).items():
        parts = [
            f"{k} {v['rps']:,.0f} req/s, p99 {v['p99_ms']:.1f} ms, {_fmt(v['server_cpu_ms'], '.2f')} cpu-ms, "
            f"wrk cpu {v['client_cpu']:.0%}"
            for k, v in fl.items()
        ]
        print(f"  {name:>9}: " + "; ".join(parts))
        print(
            f"  {'':>9}  n=1 / livez = {_fmt(_div(fl['n1']['rps'], fl['livez']['rps']), '.2f')}, "
            f"n=1 / route floor = {_fmt(_div(fl['n1']['rps'], fl['route']['rps']), '.2f')}, {fl['n1']['errors']} errors"
        )
    print_batching(f)
    if f.get("memory_peak_mb"):
        print("\npeak RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["memory_peak_mb"].items())))
    if f.get("soak_worker_mb"):
        print(
            "soak, workers' RSS after each identical piece (MB): " + " ".join(f"{v:.0f}" for v in f["soak_worker_mb"])
        )


def print_batching(f: dict) -> None:
    """The micro-batcher's effect at n = 1 npy c = 64 (bench/probes.py: batching_variants)."""
    variants = f.get("batching") or {}
    if not variants:
        return
    print(
        "\nmicro-batching, n=1 npy c=64, a server per variant, measured in turn (median round by req/s; every round's "
        "req/s / p99 ms after it)"
    )
    for name, r in variants.items():
        rounds = " ".join(f"{x['rps']:,.0f}/{x['p99_ms']:.0f}" for x in r.get("rounds", []))
        print(
            f"  {name:>38}: {r['rps']:>6,.0f} req/s, {_fmt(r['server_cpu_ms'], '.2f')} cpu-ms, p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, {r['errors']} errors   [{rounds}]"
        )
    on = next((r for k, r in variants.items() if k.startswith("batching on") and "default" in k), None)
    off = next((r for k, r in variants.items() if k.startswith("batching off")), None)
    if on and off:
        print(
            f"  off / on: req/s {_fmt(_div(off['rps'], on['rps']), '.2f')}, p99 {_fmt(_div(off['p99_ms'], on['p99_ms']), '.2f')}, "
            f"cpu-ms {_fmt(_div(off['server_cpu_ms'], on['server_cpu_ms']), '.2f')}"
        )


def checked_targets(f: dict) -> list[tuple[str, list]]:
    """Every issue's targets on the run's figures, newest issue first."""
    return [("issue 29", targets_29(f)), ("issue 18", targets_18(f)), ("issue 7", targets(f))]


def print_summary(f: dict) -> None:
    peers = peers_markdown(f)
    if peers:
        print("\n" + "\n".join(peers))
    for title, checked in checked_targets(f):
        print(f"\ntargets ({title})")
        for name, met, why in checked:
            print(f"  [{ {True: 'met ', False: 'MISS', None: ' -- '}[met] }] {name}: {why}")


def _md_table(header: list[str], rows: list[list[str]], text_columns: set[int] | None = None) -> list[str]:
    """A Markdown table; numbers right-aligned, except in `text_columns` (indices; None: every column)."""
    text = set(range(len(header))) if text_columns is None else text_columns
    align = ["---" if i in text else "---:" for i in range(len(header))]
    return [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|", *(f"| {' | '.join(r)} |" for r in rows)]


def run_file_name(f: dict) -> str:
    """The run's file in docs/perf-log/: `YYYY-MM-DD-HHMM-<cpu>-<commit>.md`, so runs sort by time
    and a host's runs are found by name."""
    m = f.get("machine") or {}
    stamp = (m.get("time") or "0000-00-00 00:00").replace(" ", "-").replace(":", "")
    cpu = "-".join("".join(c if c.isalnum() else " " for c in (m.get("cpu") or "unknown").lower()).split())
    return f"{stamp}-{cpu}-{m.get('commit') or 'unknown'}.md"


def markdown(f: dict) -> str:
    """One run as a file for docs/perf-log/: host and server, the limit per engine and layout,
    the grid with x best and x baseline, the floors, and both issues' targets.
    docs/PERFORMANCE.md#current keeps the current table per host, taken from the newest run."""
    m, lines = f.get("machine") or {}, []
    vector = "/".join(m.get("vector") or []) or "no AVX"
    title = f"## {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {vector} ({m.get('time', '?')})"
    lines += [
        title,
        "",
        f"Host: {host_line(f)}.",
        "",
        f"S{server_line(f)[1:]}.",
        "",
        f"`{('bench/serve.py ' + f.get('command', '')).strip()}`",
        "",
    ]
    table, missing = limit_table(f)
    raw, _ = raw_limits(f)
    best = best_limits(f)
    sizes = sorted({n for rates in table.values() for n in rates} | set(raw))
    if table or raw:
        ours = served_layout(f)
        source = (
            "`bench/raw_engine.py --compare`; per_core: one single-threaded session per core in as many "
            "processes at once"
            if table
            else "the limit over engines and layouts was not measured in this run: no x best"
        )
        italics = "; the server's own engine and layout in italics" if ours in table else ""
        lines.append(
            "The limit: the generator alone on pre-drawn latents, samples/s, mean of before and after the "
            f"load ({source}){italics}:"
        )
        lines.append("")
        rows = [
            [f"*{name}*" if name == ours else name, *(_fmt(rates.get(n)) for n in sizes)]
            for name, rates in table.items()
        ]
        rows += [[f"{engine}: not measured ({why})", *("-" for _ in sizes)] for engine, why in missing.items()]
        if raw:
            rows.append(
                [
                    f"onnxruntime, one session of {f.get('raw_threads', '?')} thread(s) (x raw)",
                    *(_fmt(raw.get(n)) for n in sizes),
                ]
            )
        if best:
            rows.append(
                [
                    "**best**",
                    *(
                        f"{b['samples_per_s']:,.0f} ({b['engine_layout']})" if (b := best.get(n)) else "-"
                        for n in sizes
                    ),
                ]
            )
        lines += _md_table(["engine layout", *(f"n = {n}" for n in sizes)], rows, text_columns={0}) + [""]
        peak = (f.get("limits_before") or {}).get("sgemm_gflops")
        mflop = (f.get("limits_before") or {}).get("mflop_per_sample")
        if peak and mflop and best:
            n_top = max(best)
            gflops = best[n_top]["samples_per_s"] * mflop / 1e3
            lines += [
                (
                    f"sgemm peak (torch, all cores, before the load): {peak:,.1f} GFLOP/s; at {mflop:.2f} MFLOP "
                    f"a sample the best at n = {n_top} runs {gflops:,.1f} GFLOP/s = {gflops / peak:.0%} of it."
                ),
                "",
            ]
    base = {(r["n"], r["format"], r["c"]): r for r in f.get("rows") or [] if r["target"] == "baseline"}
    grid = []
    for r in (r for r in f.get("rows") or [] if r["target"] == "ganserve"):
        b = base.get((r["n"], r["format"], r["c"])) or {}
        grid.append(
            [
                str(r["n"]),
                r["format"],
                str(r["c"]),
                _fmt(r["samples_per_s"]),
                _fmt(r["rps"], ",.1f"),
                _fmt(r["p50_ms"], ",.1f"),
                _fmt(r["p99_ms"], ",.1f"),
                str(r["errors"]),
                _fmt(_div(r["samples_per_s"], (best.get(r["n"]) or {}).get("samples_per_s")), ".2f"),
                _fmt(_div(r["samples_per_s"], raw.get(r["n"])), ".2f"),
                _fmt(r["server_cpu_ms"], ".2f"),
                _fmt(b.get("samples_per_s")),
                _fmt(_div(r["samples_per_s"], b.get("samples_per_s")), ".2f"),
                _fmt(b.get("p99_ms"), ",.1f"),
                _fmt(b.get("server_cpu_ms"), ".2f"),
            ]
        )
    if grid:
        header = [
            "n",
            "fmt",
            "c",
            "ganserve samples/s",
            "req/s",
            "p50 ms",
            "p99 ms",
            "err",
            "x best",
            "x raw",
            "cpu ms/req",
            "baseline samples/s",
            "x baseline",
            "baseline p99 ms",
            "baseline cpu ms/req",
        ]
        lines += _md_table(header, grid, text_columns={1})
        lines.append("")
    for name, fl in (f.get("floors") or {}).items():
        lines.append(
            f"Floors at c = 64, {name}: `/livez` {fl['livez']['rps']:,.0f} req/s "
            f"({_fmt(fl['livez']['server_cpu_ms'], '.2f')} CPU ms), rejected `/sample` (the route floor) "
            f"{fl['route']['rps']:,.0f} req/s ({_fmt(fl['route']['server_cpu_ms'], '.2f')} ms), n = 1 npy "
            f"{fl['n1']['rps']:,.0f} req/s ({_fmt(fl['n1']['server_cpu_ms'], '.2f')} ms, p99 "
            f"{fl['n1']['p99_ms']:.1f} ms, {fl['n1']['errors']} errors)."
        )
    workers = {k: v for k, v in (f.get("memory_peak_mb") or {}).items() if k.startswith("worker")}
    if workers:
        lines.append(f"Peak RSS per worker: {', '.join(f'{k} {v:,.0f} MB' for k, v in sorted(workers.items()))}.")
    peers = peers_markdown(f)
    if peers:
        lines += ["", *peers]
    for title, checked in checked_targets(f):
        lines += ["", f"Targets ({title}):", ""]
        lines += _md_table(
            ["target", "status", "figures"],
            [[name, f"**{_status(met)}**", why.removeprefix("not measured: ")] for name, met, why in checked],
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="render a bench/serve.py --out JSON again")
    p.add_argument("figures", type=Path, help="the JSON that `bench/serve.py --out` wrote")
    p.add_argument("--markdown", action="store_true", help="the run as Markdown, for a file in docs/perf-log/")
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
