"""tests/servers.py's own guarantees, with a stand-in server (Python's http.server, which fails on a
taken port as BentoML's arbiter does: "OSError: [Errno 98] Address already in use"):
a start that loses its port to another process between free_port() and the bind is retried on a
new port, and a dead_url() refuses every connection while it is held."""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import servers
from tests.servers import ProcessTree, Server, dead_url, http_status, start_on_free_port


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
