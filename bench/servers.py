"""Servers under test, as child processes on 127.0.0.1: ganserve (the real `bentoml serve`, started
the way `python -m service serve` starts it) and the hand-written torch baseline; plus a sampler of
their resident memory, per process, while the load runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
if str(REPO) not in sys.path:  # tests.servers, whichever script imported this module
    sys.path.insert(0, str(REPO))

from tests.servers import cpu_seconds as tree_cpu_seconds  # noqa: E402


class ServerError(RuntimeError):
    """A server did not come up: says which, and where its log is."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen | None  # None: a remote target (--url), not ours to stop or measure
    log: Path | None = None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # bentoml's arbiter stops its workers on SIGTERM; our own process group catches any left.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def processes(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def cpu_seconds(server: Server) -> float | None:
    """User + system CPU time of the server's processes so far (None: not ours to measure). CPU
    per request is steadier than req/s on a machine whose cores other work is using too."""
    return None if server.process is None else tree_cpu_seconds(server.process.pid)


def wait_ready(server: Server, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise ServerError(
                f"{server.name} exited with {server.process.returncode} before it was ready; see {server.log}"
            )
        try:
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServerError(f"{server.name} not ready at {server.url}{path} after {timeout_s:.0f} s; see {server.log}")


def spawn(name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path, cwd: Path = REPO) -> Server:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own handle
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, f"http://127.0.0.1:{port}", process, log)


def bentoml_serve_command(port: int, checkout: Path = REPO) -> list[str]:
    """Plain `bentoml serve` of a checkout's service on 127.0.0.1: the settings, allocator
    environment and layout are the caller's to give (`start_ganserve` runs what `python -m service
    serve` runs instead)."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service.service:GanServe",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(checkout.resolve()),
    ]


def start_ganserve(
    models_dir: Path, log_dir: Path, extra_env: dict[str, str], name: str = "ganserve", timeout_s: float = 240
) -> Server:
    """`bentoml serve service.service:GanServe`, with the command line service/commands/serve.py builds."""
    sys.path.insert(0, str(REPO))
    from service.commands.serve import server_command

    port = free_port()
    args = argparse.Namespace(port=port, host="127.0.0.1", models_dir=models_dir, device=None, workers=None)
    command, env = server_command(args)
    env = {**env, "GANSERVE_DEVICE": env.get("GANSERVE_DEVICE", "cpu"), **extra_env}
    server = spawn(name, command, env, port, log_dir)
    wait_ready(server, "/readyz", timeout_s)
    return server


def start_baseline(preset: str, log_dir: Path, timeout_s: float = 120) -> Server:
    port = free_port()
    command = [sys.executable, str(BENCH / "baseline_torch_server.py"), "--preset", preset, "--port", str(port)]
    server = spawn("baseline", command, dict(os.environ), port, log_dir)
    wait_ready(server, "/livez", timeout_s)
    return server


def role(process: psutil.Process) -> str:
    """'worker 1' for a BentoML worker, else the process's short name."""
    try:
        cmd = process.cmdline()
    except psutil.Error:
        return "gone"
    if "--worker-id" in cmd:
        return f"worker {cmd[cmd.index('--worker-id') + 1]}"
    return "arbiter" if "bentoml" in cmd else Path(cmd[1] if len(cmd) > 1 else cmd[0]).name


@dataclass
class MemorySampler:
    """Polls the RSS of every process of a server in a thread; keeps each role's peak and last value."""

    server: Server
    interval_s: float = 0.25
    peak_mb: dict[str, float] = field(default_factory=dict)
    last_mb: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> dict[str, float]:
        now = {}
        for p in self.server.processes():
            try:
                now[role(p)] = now.get(role(p), 0.0) + p.memory_info().rss / 2**20
            except psutil.Error:
                continue
        for k, mb in now.items():
            self.peak_mb[k] = max(self.peak_mb.get(k, 0.0), mb)
        self.last_mb = now
        return now

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
