"""The peers' figures of a bench/serve.py --peers run (bench/peers/run.py's rows): one table per
host, and issue 29's targets, which put ganserve against the engine, the route's ceiling and the
servers a user would pick instead."""

from __future__ import annotations

import statistics

from figures import _div, _fmt, best_limits
from targets import route_ceiling

# issue 29's targets, in one run on the same host
MIN_BEST_RATIO_1024 = 0.90  # n = 1024 npy, at c = 1 and at c = 8, over the best engine and layout
MIN_OVER_PEER_1024 = 1.15  # n = 1024 npy samples/s over the best peer's
MIN_OVER_PEER_N1 = 2.0  # n = 1 c = 64 req/s over the best peer's
MIN_CEILING_SHARE_N1 = 0.90  # n = 1 c = 64 over the route floor, as a share of the host's ceiling
POINTS = ((1, 64), (1024, 8), (1024, 1))  # the peers' points: a lone sample under load, bulk, bulk alone
US = "ganserve"


def peer_points(f: dict) -> dict[tuple[str, int, int], dict]:
    """(peer, n, c) -> the median over the rounds of samples/s, req/s and server CPU ms per
    request, with every round's samples/s kept for the table."""
    runs: dict[tuple[str, int, int], list[dict]] = {}
    for row in (f.get("peers") or {}).get("rows") or []:
        if "n" in row and row.get("requests"):
            runs.setdefault((row["peer"], row["n"], row["c"]), []).append(row)
    out = {}
    for key, rows in runs.items():
        cpu = [r["server_cpu_ms_per_request"] for r in rows if r.get("server_cpu_ms_per_request")]
        out[key] = {
            "samples_per_s": statistics.median(r["samples_per_s"] for r in rows),
            "rps": statistics.median(r["rps"] for r in rows),
            "cpu_ms": statistics.median(cpu) if cpu else None,
            "rounds": [r["samples_per_s"] for r in rows],
            "errors": sum(r["errors"] for r in rows),
        }
    return out


def peer_failures(f: dict) -> dict[str, str]:
    return {row["peer"]: row["error"] for row in (f.get("peers") or {}).get("rows") or [] if "error" in row}


def _best_peer(points: dict, n: int, c: int, key: str) -> tuple[str, float] | None:
    theirs = [(p, v[key]) for (p, pn, pc), v in points.items() if p != US and (pn, pc) == (n, c) and v[key]]
    return max(theirs, key=lambda t: t[1]) if theirs else None


def peers_markdown(f: dict) -> list[str]:
    """The peers table: per server and point, samples/s of each round (median first) and the
    server's CPU ms per request; then ganserve over the best peer at each point."""
    points, failed = peer_points(f), peer_failures(f)
    setup = (f.get("peers") or {}).get("setup") or {}
    names = list(dict.fromkeys([*(p for p, _, _ in points), *failed]))  # a peer that failed one round: once
    if not names:
        return []
    header = ["server", *(f"n = {n}, c = {c}: samples/s (rounds) \\| cpu ms/req" for n, c in POINTS)]
    rows = []
    for name in sorted(names, key=lambda p: (p != US, p)):
        cells = []
        for n, c in POINTS:
            v = points.get((name, n, c))
            if v is None:
                cells.append(f"failed: {failed[name][:120]}" if name in failed else "-")
                continue
            rounds = " / ".join(_fmt(x) for x in v["rounds"])
            cells.append(f"{_fmt(v['samples_per_s'])} ({rounds}) \\| {_fmt(v['cpu_ms'], '.2f')}")
        version = (setup.get(name) or {}).get("version") or name
        rows.append([f"**{version}**" if name == US else version, *cells])
    lines = ["Peers (bench/peers/, each with its own batching on; median of the rounds):", ""]
    lines += [f"| {' | '.join(header)} |", "|---|" + "---:|" * len(POINTS), *(f"| {' | '.join(r)} |" for r in rows)]
    ratios = []
    for n, c in POINTS:
        ours, best = points.get((US, n, c)), _best_peer(points, n, c, "samples_per_s")
        if ours and best:
            ratios.append(f"n = {n}, c = {c}: {ours['samples_per_s'] / best[1]:.2f}x {best[0]}")
    if ratios:
        lines += ["", f"ganserve over the best peer: {'; '.join(ratios)}."]
    return lines + [""]


def _grid_point(f: dict, n: int, c: int) -> float | None:
    """ganserve's npy samples/s at (n, c): the grid's point, else the peers run's median."""
    got = [
        r["samples_per_s"]
        for r in f.get("rows") or []
        if r["target"] == US and (r["n"], r["format"], r["c"]) == (n, "npy", c)
    ]
    if got:
        return max(got)
    v = peer_points(f).get((US, n, c))
    return v["samples_per_s"] if v else None


def targets_29(f: dict) -> list[tuple[str, bool | None, str]]:
    """Issue 29's targets: (target, met, the figures that decide it); met None where the run did
    not measure what decides it."""
    out = []
    best = best_limits(f).get(1024)
    for c in (1, 8):
        name = f"n=1024 npy c={c} >= 90% of the best engine and layout"
        ours = _grid_point(f, 1024, c)
        if not ours or not best:
            out.append((name, None, "not measured: " + ("no such point" if not ours else "no limit over engines")))
            continue
        ratio = ours / best["samples_per_s"]
        why = f"{ours:,.0f} / {best['samples_per_s']:,.0f} samples/s ({best['engine_layout']}) = {ratio:.0%}"
        out.append((name, ratio >= MIN_BEST_RATIO_1024, why))
    points = peer_points(f)
    for (n, c), floor, key in (((1024, 8), MIN_OVER_PEER_1024, "samples_per_s"), ((1, 64), MIN_OVER_PEER_N1, "rps")):
        name = f"n={n} c={c} >= {floor:g}x the best peer"
        ours, theirs = points.get((US, n, c)), _best_peer(points, n, c, key)
        if not ours or not theirs:
            out.append((name, None, "not measured: no peers run (bench/serve.py --peers)"))
            continue
        ratio = ours[key] / theirs[1]
        unit = "samples/s" if key == "samples_per_s" else "req/s"
        out.append((name, ratio >= floor, f"{ours[key]:,.0f} vs {theirs[0]} {theirs[1]:,.0f} {unit} = {ratio:.2f}x"))
    name = "n=1 c=64: the lowest CPU per request of all servers"
    cpu = {p: v["cpu_ms"] for (p, n, c), v in points.items() if (n, c) == (1, 64) and v["cpu_ms"]}
    if US in cpu and len(cpu) > 1:
        lowest = min(cpu, key=cpu.get)
        others = ", ".join(f"{p} {ms:.2f}" for p, ms in sorted(cpu.items(), key=lambda t: t[1]) if p != US)
        out.append((name, lowest == US, f"ganserve {cpu[US]:.2f} CPU ms; {others}"))
    else:
        out.append((name, None, "not measured: no peers run with CPU figures"))
    name = "n=1 c=64 >= 90% of the route's ceiling on the host"
    fl = (f.get("floors") or {}).get(US)
    ceiling = route_ceiling(f, (fl or {}).get("route", {}).get("server_cpu_ms")) if fl else None
    if not fl or not ceiling:
        out.append((name, None, "not measured: " + ("no floors" if not fl else "no n = 64 limit or no CPU figures")))
    else:
        share = _div(fl["n1"]["rps"], fl["route"]["rps"]) or 0.0
        out.append(
            (
                name,
                share >= MIN_CEILING_SHARE_N1 * ceiling[0],
                f"{fl['n1']['rps']:,.0f} / {fl['route']['rps']:,.0f} req/s = {share:.0%} of the route floor, "
                f"{share / ceiling[0]:.0%} of the ceiling {ceiling[0]:.0%}",
            )
        )
    return out
