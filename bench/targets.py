"""Issue 7's and issue 18's targets, checked on bench/serve.py's figures: (name, met or None when
the run cannot decide, the figures that say so)."""

from __future__ import annotations

from figures import _div, _fmt, best_limits, raw_limits

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
    pts = [
        (r, base[(r["n"], r["format"], r["c"])])
        for r in rows
        if r["target"] == "ganserve" and (r["n"], r["format"], r["c"]) in base
    ]
    behind = [
        f"n={r['n']} {r['format']} c={r['c']} ({_fmt(_div(r['samples_per_s'], b), '.2f')}x)"
        for r, b in pts
        if r["samples_per_s"] <= b
    ]
    return (
        not behind,
        f"behind at {len(behind)} of {len(pts)} points: {', '.join(behind)}"
        if behind
        else f"ahead at all {len(pts)} points",
    )


def route_ceiling(f: dict, route_cpu_ms: float | None) -> tuple[float, float] | None:
    """(the highest share of the route floor n = 1 can reach on this host, the graph's CPU ms a
    sample): the route's CPU per request plus the graph's at the best n = 64 limit (a run at c = 64
    serves tens of callers), as if everything else a sample needs were free (bench/request_path.py
    splits the rest). None where the run measured no n = 64 limit or no CPU."""
    best, cores = best_limits(f).get(64), (f.get("machine") or {}).get("cores")
    if not best or not cores or not route_cpu_ms:
        return None
    graph_ms = 1000 * cores / best["samples_per_s"]
    return route_cpu_ms / (route_cpu_ms + graph_ms), graph_ms


def targets_18(f: dict) -> list[tuple[str, bool | None, str]]:
    """Issue 18's targets, checked in one run on every host: (target, met, the figures that decide
    it); met is None where this run did not measure what decides it (and the figures say why)."""
    rows, out = f.get("rows") or [], []
    name = "n=1024 npy >= 90% of the best raw engine and layout on the host"
    best = best_limits(f).get(1024)
    at = max(
        (r for r in rows if r["target"] == "ganserve" and r["n"] == 1024 and r["format"] == "npy"),
        key=lambda r: r["samples_per_s"],
        default=None,
    )
    if at is None or not best:
        out.append(
            (
                name,
                None,
                "not measured: "
                + (
                    "no n=1024 npy point in the grid"
                    if at is None
                    else "no limit over engines (raw_engine.py --compare)"
                ),
            )
        )
    else:
        ratio = at["samples_per_s"] / best["samples_per_s"]
        why = (
            f"{at['samples_per_s']:,.0f} at c={at['c']} / {best['samples_per_s']:,.0f} samples/s "
            f"({best['engine_layout']}) = {ratio:.0%}"
        )
        out.append((name, ratio >= MIN_BEST_RATIO_1024_NPY, why))
    ahead = ahead_of_baseline(rows)
    out.append(
        (
            "ahead of the hand-written baseline at every point of the grid",
            *(ahead if ahead is not None else (None, "not measured: no baseline in this run")),
        )
    )
    floors = f.get("floors") or {}
    fl, bl = floors.get("ganserve"), floors.get("baseline")
    name = "n=1 c=64 >= 75% of the route floor"
    if fl:
        n1, route = fl["n1"], fl["route"]
        ratio = _div(n1["rps"], route["rps"])
        ceiling = route_ceiling(f, route.get("server_cpu_ms"))
        note = (
            f"; ceiling on this host {ceiling[0]:.0%} (the route's {route['server_cpu_ms']:.2f} CPU ms plus the "
            f"graph's {ceiling[1]:.3f} a sample at the n = 64 limit, all else free)"
            if ceiling
            else ""
        )
        out.append(
            (
                name,
                ratio is not None and ratio >= MIN_ROUTE_RATIO_N1_C64,
                f"{n1['rps']:,.0f} / {route['rps']:,.0f} req/s = {_fmt(ratio, '.0%')}, {n1['errors']} errors{note}",
            )
        )
    else:
        out.append((name, None, "not measured: no floors in this run"))
    name = "n=1 c=64 CPU per request <= half the baseline's"
    mine, theirs = (fl or {}).get("n1", {}).get("server_cpu_ms"), (bl or {}).get("n1", {}).get("server_cpu_ms")
    if mine and theirs:
        out.append(
            (
                name,
                mine / theirs <= MAX_CPU_OVER_BASELINE_N1_C64,
                f"{mine:.2f} vs {theirs:.2f} CPU ms per request = {mine / theirs:.2f}x",
            )
        )
    else:
        out.append(
            (
                name,
                None,
                "not measured: "
                + ("no baseline in this run" if not bl else "no CPU figures (a server not started by the bench)"),
            )
        )
    return out


def targets(f: dict) -> list[tuple[str, bool, str]]:
    """Issue 7's targets: (target, met, the figures that decide it)."""
    rows, (raw, raw_cpu), out = f.get("rows") or [], raw_limits(f), []
    npy, json_ = _best(rows, "ganserve", 1024, "npy"), _best(rows, "ganserve", 1024, "json")
    if npy and 1024 in raw:
        cpu = [
            r["server_cpu_ms"]
            for r in rows
            if r["target"] == "ganserve" and r["n"] == 1024 and r["format"] == "npy" and r["server_cpu_ms"]
        ]
        cpu_note = f"; by CPU per request {raw_cpu[1024] / min(cpu):.0%}" if cpu and 1024 in raw_cpu else ""
        out.append(
            (
                "n=1024 npy >= 80% of raw onnxruntime",
                npy / raw[1024] >= MIN_RAW_RATIO_1024_NPY,
                f"{npy:,.0f} / {raw[1024]:,.0f} samples/s = {npy / raw[1024]:.0%}{cpu_note}",
            )
        )
    fl = f.get("floors", {}).get("ganserve")
    if fl:
        n1, livez, route = fl["n1"], fl["livez"], fl["route"]
        ratio = _div(n1["rps"], livez["rps"]) or 0.0
        out.append(
            (
                "n=1 c=64: no errors, >= 70% of the HTTP floor (/livez)",
                n1["errors"] == 0 and ratio >= MIN_FLOOR_RATIO_N1_C64,
                f"{n1['rps']:,.0f} / {livez['rps']:,.0f} req/s = {ratio:.0%}, {n1['errors']} errors "
                f"(route floor {route['rps']:,.0f} req/s: {_fmt(_div(n1['rps'], route['rps']), '.0%')})",
            )
        )
    if npy and json_ is not None:
        slower = npy / json_ if json_ else float("inf")
        out.append(
            (
                "json at n=1024 <= 3x slower than npy",
                slower <= MAX_JSON_OVER_NPY_1024,
                f"npy {npy:,.0f} vs json {json_:,.0f} samples/s = {slower:.2f}x",
            )
        )
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
        out.append(
            (
                "RSS flat over the soak",
                growth <= FLAT_TOLERANCE_MB,
                f"{series[0]:.0f} -> {series[-1]:.0f} MB over {len(series)} pieces; "
                f"second half's peak minus the first's: {growth:+.1f} MB",
            )
        )
    return out


def _status(met: bool | None) -> str:
    return "met" if met else "not measured" if met is None else "missed"
