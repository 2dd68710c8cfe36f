"""tests/servers.py's own guarantees, with a stand-in server (Python's http.server, which fails on a
taken port as BentoML's arbiter does: "OSError: [Errno 98] Address already in use"):
a start that loses its port to another process between free_port() and the bind is retried on a
new port, and a dead_url() refuses every connection while it is held; metric_sum reads samples by
their names and labels, cpu_seconds counts a whole process tree, and bench scripts can import the
module where pytest is not installed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests import servers
from tests.servers import (
    REPO,
    ProcessTree,
    Server,
    cpu_seconds,
    dead_url,
    http_status,
    metric_sum,
    metric_values,
    start_on_free_port,
)


@pytest.fixture
def taken_port():
    """A port some other process listens on, and free_port() answering it first, as when that
    process took the port after free_port() had found it free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        real = servers.free_port
        answers = iter([port])
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(servers, "free_port", lambda: next(answers, None) or real())
            yield port


def http_server(root: Path, port: int) -> list[str]:
    (root / "readyz").write_text("ok")
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)]


def test_a_start_that_lost_its_port_is_retried_on_a_new_one(taken_port, tmp_path):
    def start(port: int) -> ProcessTree:
        return ProcessTree("stand-in", http_server(tmp_path, port), tmp_path / f"stand-in-{port}.log")

    process, port = start_on_free_port(start, "/readyz", 30)
    try:
        assert port != taken_port and http_status(f"http://127.0.0.1:{port}/readyz") == 200
        first_log = (tmp_path / f"stand-in-{taken_port}.log").read_text()
        assert servers.PORT_TAKEN in first_log  # the first start really lost its port
    finally:
        process.stop()


class StandInServer(Server):
    """Server's own restart logic around a stand-in command."""

    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__("stand-in", env=None, log=root / "server.log")

    def _argv(self) -> list[str]:
        return http_server(self.root, self.port)


def test_a_server_that_lost_its_port_restarts_on_a_new_one(taken_port, tmp_path):
    server = StandInServer(tmp_path)
    try:
        assert server.port == taken_port
        server.wait_ready(30)
        assert server.port != taken_port and http_status(f"{server.url}/readyz") == 200
    finally:
        server.stop()


def test_a_dead_url_refuses_connections_while_held():
    with dead_url() as url:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(urllib.error.URLError) as refused:
            urllib.request.urlopen(f"{url}/readyz", timeout=5)
        assert isinstance(refused.value.reason, ConnectionRefusedError)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:  # nobody else can serve there
            with pytest.raises(OSError):
                other.bind(("127.0.0.1", port))


# As a server's /metrics has them: sample names carry the suffixes (a counter's `_total`, a
# histogram's `_bucket`, `_sum` and `_count`), the families' names do not.
METRICS = """# HELP ganserve_samples_served_total Samples returned to callers, per model
# TYPE ganserve_samples_served_total counter
ganserve_samples_served_total{model="a"} 3.0
ganserve_samples_served_total{model="b"} 4.0
# HELP request_duration_seconds Request duration
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{endpoint="/sample",http_response_code="200",le="0.1"} 2.0
request_duration_seconds_bucket{endpoint="/sample",http_response_code="200",le="+Inf"} 3.0
request_duration_seconds_sum{endpoint="/sample",http_response_code="200"} 0.5
request_duration_seconds_count{endpoint="/sample",http_response_code="200"} 3.0
request_duration_seconds_count{endpoint="/sample",http_response_code="503"} 1.0
request_duration_seconds_count{endpoint="/readyz",http_response_code="200"} 7.0
# HELP ganserve_queued_requests Requests waiting for admission
# TYPE ganserve_queued_requests gauge
ganserve_queued_requests 2.0
"""


def test_metric_sum_adds_the_samples_of_one_name_whose_labels_match():
    assert metric_sum(METRICS, "ganserve_samples_served_total") == 7
    assert metric_sum(METRICS, "ganserve_samples_served_total", model="b") == 4
    assert metric_sum(METRICS, "ganserve_samples_served") == 0  # the family's name names no sample
    assert metric_sum(METRICS, "request_duration_seconds_count") == 11
    assert metric_sum(METRICS, "request_duration_seconds_count", endpoint="/sample") == 4
    assert metric_sum(METRICS, "request_duration_seconds_count", endpoint="/sample", http_response_code="200") == 3
    assert metric_sum(METRICS, "request_duration_seconds_bucket", le="+Inf") == 3
    assert metric_sum(METRICS, "ganserve_queued_requests") == 2
    assert metric_values(METRICS, "ganserve_samples_served_total", model="c") == []
    assert metric_values(METRICS, "ganserve_queued_requests") == [2.0]


def test_cpu_seconds_counts_the_processes_a_process_forked(tmp_path):
    busy_child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'while True: pass'])"
    tree = ProcessTree("busy", [sys.executable, "-c", busy_child], tmp_path / "busy.log")
    try:
        pid = tree.proc.pid
        deadline = time.monotonic() + 30
        while cpu_seconds(pid) - sum(psutil.Process(pid).cpu_times()[:2]) < 0.2:  # the child's share
            assert time.monotonic() < deadline, "the busy child's CPU was not counted"
            time.sleep(0.1)
    finally:
        tree.stop()
    assert cpu_seconds(pid) == 0  # gone


def test_bench_can_import_this_module_without_pytest():
    """bench/servers.py imports it, and bench/serve.py runs where pytest is not installed."""
    blocked = "import sys; sys.modules['pytest'] = sys.modules['_pytest'] = None; import tests.servers"
    done = subprocess.run([sys.executable, "-c", blocked], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
