"""bench/report.py on a small hand-made figures dict: issue 18's limit over engines and layouts,
its targets, and the Markdown of a run for docs/perf-log/ (pure functions; no server)."""

from __future__ import annotations

import json

import pytest

from bench import report


def _row(target: str, n: int, fmt: str, c: int, samples_per_s: float, cpu_ms: float | None = 1.0) -> dict:
    return {
        "target": target,
        "n": n,
        "format": fmt,
        "c": c,
        "samples_per_s": samples_per_s,
        "rps": samples_per_s / n,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "errors": 0,
        "server_cpu_ms": cpu_ms,
        "client_cpu": 0.1,
    }


def _floor(rps: float, cpu_ms: float) -> dict:
    return {"rps": rps, "p99_ms": 30.0, "errors": 0, "server_cpu_ms": cpu_ms, "client_cpu": 0.1}


def _limits(scale: float) -> dict:
    """raw_engine.py --compare --json's shape, with JSON's string keys for n."""
    return {
        "model": "mnist",
        "threads": 2,
        "sgemm_gflops": 100.0,
        "mflop_per_sample": 5.0,
        "samples_per_s": {
            "onnxruntime": {
                "all_cores": {"1": 10_000 * scale, "64": 16_000 * scale, "1024": 34_000 * scale},
                "per_core": {"1": 12_000 * scale, "64": 20_000 * scale, "1024": 36_000 * scale},
            },
            "openvino": "OpenVINO is not installed (the openvino extra)",
            "torch": {
                "all_cores": {"1": 5_000 * scale, "1024": 40_000 * scale},
                "per_core": {"1": 6_000 * scale, "1024": 38_000 * scale},
            },
        },
    }


@pytest.fixture
def figures() -> dict:
    return {
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "vector": ["avx", "avx2", "fma", "avx512f"],
            "workers": 2,
            "graph_threads": 1,
            "layout": "2 worker(s) for 2 core(s)",
            "load_avg_at_start": [0.5, 0.4, 0.3],
            "load_avg_at_end": [1.5, 1.0, 0.5],
            "python": "3.11",
            "commit": "abc1234",
            "time": "2026-12-01 10:00",
        },
        "command": "--out /tmp/f.json",
        "served_on": {
            "provider": "CPUExecutionProvider",
            "device": "cpu",
            "backend": "onnxruntime",
            "backend_reason": "measured",
            "layout": "2 worker(s) for 2 core(s); 1 graph thread(s) per worker",
        },
        "raw_threads": 1,
        "raw_before": {1: {"ort": 8_000, "ort_cpu_ms": 0.2}, 1024: {"ort": 20_000, "ort_cpu_ms": 50.0}},
        "raw_after": {1: {"ort": 8_000, "ort_cpu_ms": 0.2}, 1024: {"ort": 20_000, "ort_cpu_ms": 50.0}},
        # torch all_cores is the best at n = 1024: (40,000 + 36,000) / 2 = 38,000 samples/s
        "limits_before": _limits(1.0),
        "limits_after": _limits(0.9),
        "rows": [
            _row("ganserve", 1024, "npy", 4, 34_960),
            _row("baseline", 1024, "npy", 4, 30_000),
            _row("ganserve", 1024, "npy", 8, 33_000),
            _row("baseline", 1024, "npy", 8, 34_000),
            _row("ganserve", 1, "npy", 64, 3_000),
            _row("baseline", 1, "npy", 64, 1_000),
        ],
        "floors": {
            "ganserve": {"livez": _floor(7_000, 0.15), "route": _floor(4_000, 0.26), "n1": _floor(2_960, 0.40)},
            "baseline": {"livez": _floor(24_000, 0.04), "route": _floor(20_000, 0.05), "n1": _floor(1_100, 0.80)},
        },
    }


def test_the_limit_is_the_best_engine_and_layout_mean_of_before_and_after(figures):
    table, missing = report.limit_table(figures)
    assert table["torch all_cores"][1024] == pytest.approx(38_000)
    assert table["onnxruntime per_core"][1] == pytest.approx(11_400)
    assert missing == {"openvino": "OpenVINO is not installed (the openvino extra)"}
    best = report.best_limits(figures)
    assert best[1024] == {"engine_layout": "torch all_cores", "samples_per_s": pytest.approx(38_000)}
    assert best[1]["engine_layout"] == "onnxruntime per_core"
    assert report.served_layout(figures) == "onnxruntime per_core"  # 2 single-threaded workers on 2 cores
    # What the server said it runs wins over what the bench expected.
    figures["served_on"].update(workers=1, graph_threads=2)
    assert report.served_layout(figures) == "onnxruntime all_cores"


def test_layout_counts_from_get_models():
    assert report.layout_counts(
        "2 worker(s) for 2 core(s) and 21.8 GiB available (one per core, at most 16, "
        "each within 500 MiB); 1 graph thread(s) per worker"
    ) == (2, 1)
    assert report.layout_counts("GANSERVE_WORKERS=1; 2 graph thread(s) per worker") == (1, 2)
    assert report.layout_counts("") == (None, None)


def test_issue_18_targets(figures):
    got = {name: (met, why) for name, met, why in report.targets_18(figures)}
    met, why = got["n=1024 npy >= 90% of the best raw engine and layout on the host"]
    assert met is True and "34,960 at c=4 / 38,000 samples/s (torch all_cores) = 92%" in why
    met, why = got["ahead of the hand-written baseline at every point of the grid"]
    assert met is False and "n=1024 npy c=8" in why
    met, why = got["n=1 c=64 >= 75% of the route floor"]
    assert met is False and "2,960 / 4,000 req/s = 74%" in why
    # the best n = 64 limit: onnxruntime per_core, (20,000 + 18,000) / 2 = 19,000 samples/s on 2 cores,
    # 0.105 CPU ms a sample; with the route's 0.26 ms: 0.26 / 0.365 = 71%
    assert "ceiling on this host 71% (the route's 0.26 CPU ms plus the graph's 0.105 a sample" in why
    met, why = got["n=1 c=64 CPU per request <= half the baseline's"]
    assert met is True and "0.40 vs 0.80" in why  # exactly half counts as met


def test_issue_18_targets_not_measured_say_so(figures, capsys):
    """A run without the limit, the baseline, the floors or raw (--url, --no-compare, --no-baseline)."""
    for key in ("limits_before", "limits_after", "floors", "raw_before", "raw_after"):
        del figures[key]
    figures["rows"] = [r for r in figures["rows"] if r["target"] == "ganserve"]
    checked = report.targets_18(figures)
    assert [met for _, met, _ in checked] == [None, None, None, None]
    assert all(why.startswith("not measured") for _, _, why in checked)
    figures["floors"] = {}
    report.print_grid(figures)
    report.print_summary(figures)
    out = capsys.readouterr().out
    assert "limit over engines and layouts: not measured (no x best)" in out
    assert "[ -- ] n=1024 npy >= 90% of the best raw engine and layout on the host: not measured" in out
    md = report.markdown(figures)
    assert "| **not measured** | no baseline in this run |" in md and "| x best |" in md


def test_markdown_section_for_a_host(figures, tmp_path, capsys):
    md = report.markdown(figures)
    assert md.startswith("## Test CPU, 2 cores, avx/avx2/fma/avx512f (2026-12-01 10:00)")
    assert "load average 0.50 at the start, 1.50 at the end" in md
    assert (
        "Server: layout 2 worker(s)" in md
        and "backend onnxruntime (measured)" in md
        and "1 graph thread(s) per worker" in md
    )
    assert "| *onnxruntime per_core* | 11,400 | 19,000 | 34,200 |" in md  # the server's own engine and layout
    assert "| torch per_core | 5,700 | - | 36,100 |" in md  # an n another engine was not measured at
    assert "| openvino: not measured (OpenVINO is not installed (the openvino extra)) | - | - | - |" in md
    assert (
        "| **best** | 11,400 (onnxruntime per_core) | 19,000 (onnxruntime per_core) | 38,000 (torch all_cores) |" in md
    )
    assert "| x best | x raw |" in md and "| target | status | figures |\n|---|---|---|" in md
    # n = 1024 npy c = 4: x best 34,960 / 38,000, x raw / 20,000, x baseline / 30,000
    assert "| 1024 | npy | 4 | 34,960 | 34.1 | 1.0 | 2.0 | 0 | 0.92 | 1.75 | 1.00 | 30,000 | 1.17 | 2.0 | 1.00 |" in md
    assert "| n=1 c=64 >= 75% of the route floor | **missed** |" in md
    assert "Targets (issue 7):" in md
    # The --out JSON (string keys for n) renders the same, from the command line too.
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(figures))
    assert report.main([str(path), "--markdown"]) == 0
    assert capsys.readouterr().out == md


def test_a_runs_page_is_named_by_time_cpu_and_commit_so_runs_sort_by_time():
    f = {"machine": {"cpu": "AMD EPYC 7B13", "time": "2026-12-07 14:49", "commit": "3d2baa7"}}
    assert report.run_file_name(f) == "2026-12-07-1449-amd-epyc-7b13-3d2baa7.md"
    later = {"machine": {**f["machine"], "time": "2026-12-07 15:02"}}
    assert sorted([report.run_file_name(later), report.run_file_name(f)])[0] == report.run_file_name(f)
    assert report.run_file_name({}).endswith("-unknown-unknown.md")


def _peer(peer: str, n: int, c: int, round_: int, samples_per_s: float, cpu_ms: float) -> dict:
    return {
        "round": round_,
        "peer": peer,
        "version": peer,
        "n": n,
        "c": c,
        "rps": samples_per_s / n,
        "samples_per_s": samples_per_s,
        "requests": 100,
        "errors": 0,
        "server_cpu_ms_per_request": cpu_ms,
    }


@pytest.fixture
def with_peers(figures) -> dict:
    rows = []
    for r in (1, 2):  # medians: ganserve 2,900 n=1 req/s, 33,000 at n=1024 c=8; kserve 30,000 there
        rows += [
            _peer("ganserve", 1, 64, r, 2_800 + 200 * (r - 1), 0.40),
            _peer("ganserve", 1024, 8, r, 33_000, 60.0),
            _peer("ganserve", 1024, 1, r, 35_000, 58.0),
            _peer("kserve", 1, 64, r, 700, 1.50),
            _peer("kserve", 1024, 8, r, 30_000 + 1_000 * (r - 1), 55.0),
            _peer("litserve", 1, 64, r, 1_500, 0.35),
        ]
    rows.append({"round": 1, "peer": "rayserve", "version": "ray 2.60", "error": "ServerError: not ready"})
    figures["peers"] = {"rows": rows, "setup": {"ganserve": {"version": "ganserve 0.1"}}}
    return figures


def test_issue_29_targets_against_the_engine_the_peers_and_the_ceiling(with_peers):
    got = {name: (met, why) for name, met, why in report.targets_29(with_peers)}
    # the grid has no c = 1 point: the peers run's median for ganserve decides
    met, why = got["n=1024 npy c=1 >= 90% of the best engine and layout"]
    assert met is True and "35,000 / 38,000 samples/s (torch all_cores) = 92%" in why
    met, why = got["n=1024 npy c=8 >= 90% of the best engine and layout"]
    assert met is False and "33,000 / 38,000 samples/s (torch all_cores) = 87%" in why
    met, why = got["n=1024 c=8 >= 1.15x the best peer"]
    assert met is False and "33,000 vs kserve 30,500 samples/s = 1.08x" in why
    met, why = got["n=1 c=64 >= 2x the best peer"]
    assert met is False and "2,900 vs litserve 1,500 req/s = 1.93x" in why
    met, why = got["n=1 c=64: the lowest CPU per request of all servers"]
    assert met is False and why == "ganserve 0.40 CPU ms; litserve 0.35, kserve 1.50"
    # 2,960 / 4,000 = 74% of the route floor; the ceiling 71% (test_issue_18_targets): 104% of it
    met, why = got["n=1 c=64 >= 90% of the route's ceiling on the host"]
    assert met is True and "= 74% of the route floor, 104% of the ceiling 71%" in why


def test_the_peers_table_and_the_not_measured_targets(with_peers, figures):
    md = report.markdown(with_peers)
    assert "| **ganserve 0.1** | 2,900 (2,800 / 3,000) \\| 0.40 | 33,000 (33,000 / 33,000) \\| 60.00 |" in md
    assert "| rayserve | failed: ServerError: not ready | failed: ServerError: not ready |" in md
    assert "ganserve over the best peer: n = 1, c = 64: 1.93x litserve; n = 1024, c = 8: 1.08x kserve." in md
    assert "Targets (issue 29):" in md
    del with_peers["peers"], with_peers["floors"]
    checked = {name: met for name, met, _ in report.targets_29(with_peers)}
    assert [checked[k] for k in list(checked)[2:]] == [None, None, None, None]


def test_a_peer_that_failed_one_round_and_ran_the_other_has_one_row(with_peers):
    with_peers["peers"]["rows"].append(_peer("rayserve", 1, 64, 2, 250, 7.0))
    md = report.markdown(with_peers)
    rows = [line for line in md.splitlines() if line.startswith("| rayserve ")]
    # its round-1 failure names the points it has no figures for
    assert rows == [
        "| rayserve | 250 (250) \\| 7.00 | failed: ServerError: not ready | failed: ServerError: not ready |"
    ]
