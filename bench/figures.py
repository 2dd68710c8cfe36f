"""Reading bench/serve.py's figures (a dict, also written as JSON): the raw limits, the limit over
engines and layouts, and the layout the server ran with. Shared by report.py and targets.py."""

from __future__ import annotations

import re


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def raw_limits(f: dict) -> tuple[dict[int, float], dict[int, float]]:
    """({n: samples/s}, {n: CPU ms per run}) of raw onnxruntime: the mean of before and after."""
    before = f.get("raw_before") or {}
    after = f.get("raw_after") or before
    rate = {int(n): (row["ort"] + after[n]["ort"]) / 2 for n, row in before.items() if n in after}
    cpu = {
        int(n): (row["ort_cpu_ms"] + after[n]["ort_cpu_ms"]) / 2
        for n, row in before.items()
        if n in after and "ort_cpu_ms" in row
    }
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
            table[f"{engine} {layout}"] = {
                n: (r + rates_after[n]) / 2 if n in rates_after else r for n, r in _by_n(rates).items()
            }
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
    return (int(workers.group(1) or workers.group(2)) if workers else None, int(threads.group(1)) if threads else None)


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
