"""A real `python -m service serve` (bentoml serve) subprocess on 127.0.0.1, over real HTTP."""

from __future__ import annotations

import io
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.servers import STOP_GRACE_S, start_server
from tests.service.support import DEFAULT, TOKEN, server_env_8_threads

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def running_server(service_models_dir, tmp_path_factory):
    """The server (default settings but the test ones); on teardown it must stop on SIGTERM,
    promptly and cleanly."""
    root = tmp_path_factory.mktemp("server")
    with start_server(service_models_dir, server_env_8_threads(service_models_dir, root), root) as running:
        yield running
    if not running.stopped_in_time:
        pytest.fail(f"the server did not stop within {STOP_GRACE_S} s of SIGTERM:\n{running.log_tail()}")
    assert running.returncode in (0, -signal.SIGTERM), running.log_tail()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/livez", timeout=2)


@pytest.fixture(scope="module")
def server(running_server) -> str:
    """The running server's base URL."""
    return running_server.url


def test_one_request_per_format(server):
    with httpx.Client(base_url=server, headers=AUTH, timeout=30) as http:
        as_json = http.post("/sample", json={"n": 4, "seed": 7})
        assert as_json.status_code == 200 and as_json.json()["model"] == DEFAULT
        as_npy = http.post("/sample", json={"n": 4, "seed": 7, "format": "npy"})
        x = np.load(io.BytesIO(as_npy.content), allow_pickle=False)
        np.testing.assert_array_equal(x, np.asarray(as_json.json()["samples"], np.float32))
        as_png = http.post("/sample", json={"n": 4, "seed": 7, "format": "png"})
        assert as_png.headers["content-type"] == "image/png" and as_png.content.startswith(b"\x89PNG")
        path = http.post("/interpolate", json={"seeds": [1, 2], "steps": 3})
        assert np.asarray(path.json()["samples"]).shape == (3, 1, 8, 8)
        scored = http.post("/score", content=as_npy.content, headers={"content-type": "application/x-npy"})
        assert scored.status_code == 200 and scored.json()["n"] == 4
        models = http.get("/models").json()
        assert {m["name"] for m in models["models"] if m["status"] == "ready"} == {
            "faulty",
            "tiny-cond",
            "tiny-digits",
            "tiny-ring",
            "tiny-style",
        }
        bad = http.post("/sample", json={"n": 0})
        assert bad.status_code == 400 and bad.json()["error"].startswith("n: ")
        assert http.post("/sample", json={"model": "faulty", "n": 1}).status_code == 500
        assert http.post("/sample", json={"n": 1}, headers={"Authorization": "Bearer no"}).status_code == 401
        assert http.get("/readyz", headers={"Authorization": ""}).status_code == 200


def test_a_concurrent_burst_gets_each_caller_its_own_samples(server):
    """32 callers at once (they share graph runs in the micro-batcher): every answer must equal the
    one that seed gives alone."""
    with httpx.Client(base_url=server, headers=AUTH, timeout=60) as http:
        alone = {s: http.post("/sample", json={"n": 2, "seed": s, "format": "npy"}).content for s in range(4)}

        def call(i: int) -> tuple[int, httpx.Response]:
            seed = i % 4
            return seed, http.post("/sample", json={"n": 2, "seed": seed, "format": "npy"})

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(call, range(32)))
        for seed, r in answers:
            assert r.status_code == 200, r.text
            assert r.content == alone[seed]
        metrics = http.get("/metrics").text
        assert f'ganserve_samples_served_total{{model="{DEFAULT}"}}' in metrics


def access_lines(log: str, path: str) -> int:
    return sum(f"path={path}," in line for line in log.splitlines())


def logged(server, count, at_least: int, timeout_s: float = 10.0) -> str:
    """The server's log once `count(log)` reaches `at_least`: BentoML writes a request's access
    line after the answer has gone out, so the client can get there first. Polled, as
    test_proxy.py polls nginx's log, not slept on; the log as it stands when time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = server.log.read_text(errors="replace")
        if count(log) >= at_least or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_the_access_log_has_a_line_per_request_unless_switched_off(running_server, service_models_dir, tmp_path):
    count = lambda log: access_lines(log, "/interpolate")
    with httpx.Client(base_url=running_server.url, headers=AUTH, timeout=30) as http:
        before = count(running_server.log.read_text(errors="replace"))
        assert http.post("/interpolate", json={"seeds": [1, 2], "steps": 2}).status_code == 200
    assert count(logged(running_server, count, before + 1)) == before + 1
    env = {**server_env_8_threads(service_models_dir, tmp_path), "GANSERVE_ACCESS_LOG": "false"}
    with start_server(service_models_dir, env, tmp_path, name="quiet") as quiet:
        with httpx.Client(base_url=quiet.url, headers=AUTH, timeout=30) as http:
            assert http.post("/sample", json={"n": 1}).status_code == 200
            assert http.post("/interpolate", json={"seeds": [1, 2], "steps": 2}).status_code == 200
    # Read once the server has stopped: every line it would ever write is written by then.
    log = quiet.log.read_text(errors="replace")
    assert "Service ganserve initialized" in log  # the log is there, only the request lines are not
    assert access_lines(log, "/sample") == access_lines(log, "/interpolate") == 0


def sample_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "path=/sample," in line]


def test_requests_get_tracing_spans_only_when_tracing_is_on(running_server, service_models_dir, tmp_path):
    """Off (the default), BentoML's OpenTelemetry middleware passes requests through: no span, so
    no trace id in the access line. On, each request has its own span."""
    count = lambda log: len(sample_lines(log))
    before = count(running_server.log.read_text(errors="replace"))
    with httpx.Client(base_url=running_server.url, headers=AUTH, timeout=30) as http:
        assert http.post("/sample", json={"n": 1}).status_code == 200
    untraced = sample_lines(logged(running_server, count, before + 1))
    assert len(untraced) == before + 1 and not any("trace=" in line for line in untraced), untraced[-1:]
    env = {**server_env_8_threads(service_models_dir, tmp_path), "GANSERVE_TRACING": "true", **IN_MEMORY_EXPORTER}
    with start_server(service_models_dir, env, tmp_path, name="traced") as traced:
        with httpx.Client(base_url=traced.url, headers=AUTH, timeout=30) as http:
            for _ in range(2):
                assert http.post("/sample", json={"n": 1}).status_code == 200
    lines = sample_lines(traced.log.read_text(errors="replace"))  # stopped: every line is written
    trace_ids = [re.search(r"trace=([0-9a-f]{32}),", line) for line in lines]
    assert len(lines) == 2 and all(trace_ids), lines
    assert trace_ids[0].group(1) != trace_ids[1].group(1)  # one trace per request
    assert UNUSED_EXPORTER not in traced.log.read_text(errors="replace")


# A tracing exporter in BentoML's own config (here through its environment override; a file that
# BENTOML_CONFIG names works the same); in_memory exports nowhere, so the test needs no collector.
IN_MEMORY_EXPORTER = {"BENTOML_CONFIG_OPTIONS": "services.ganserve.tracing.exporter_type=in_memory"}
UNUSED_EXPORTER = "but GANSERVE_TRACING is off"


def test_an_exporter_configured_with_tracing_off_is_named_in_a_warning(running_server, service_models_dir, tmp_path):
    """Tracing is off by default; an operator who set up an exporter in BentoML's config would
    otherwise get no spans and no word why. Without an exporter (running_server), no warning."""
    assert UNUSED_EXPORTER not in running_server.log.read_text(errors="replace")
    env = {**server_env_8_threads(service_models_dir, tmp_path), **IN_MEMORY_EXPORTER}
    with start_server(service_models_dir, env, tmp_path, name="exporter-unused") as server:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            assert http.post("/sample", json={"n": 1}).status_code == 200  # it serves as before
    log = server.log.read_text(errors="replace")  # stopped: every line is written
    warnings = [line for line in log.splitlines() if UNUSED_EXPORTER in line]
    assert len(warnings) == 1 and "[WARNING]" in warnings[0] and "(in_memory)" in warnings[0], warnings
    assert "GANSERVE_TRACING=true" in warnings[0]
    assert not any("trace=" in line for line in sample_lines(log))
