"""Real server processes for tests: started on a free loopback port, awaited until ready, and
stopped with every process they fork. Used by tests/service (one `python -m service serve`) and
tests/deploy (two `bentoml serve` replicas behind nginx); a plain module, importable from both.

BentoML's workers start sessions of their own, so neither a process group nor the leader's exit
reaches them: the tree is walked (psutil, which BentoML itself depends on) and each process left
is killed by its id. psutil refuses to signal a process whose id was reused meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 90  # bentoml's first start on two busy cores
STOP_GRACE_S = 30  # a server must stop this soon after SIGTERM


def free_port() -> int:
    """A TCP port free on the loopback interface right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2) -> int:
    """The status of a GET; OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def server_env(extra_env: dict[str, str]) -> dict[str, str]:
    """This environment without the developer's GANSERVE_* settings or the test process's
    Prometheus directory (`bentoml serve` makes its own), plus `extra_env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GANSERVE_", "PROMETHEUS_"))}
    env.update(extra_env)
    return env


class ProcessTree:
    """A process started in a session of its own, and every process it forks."""

    def __init__(self, name: str, argv: list[str], log: Path, env: Optional[dict[str, str]] = None,
                 cwd: Path = REPO) -> None:
        self.name, self.log = name, log
        self.stopped_in_time: Optional[bool] = None  # set by stop()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def wait_until(self, url: str, timeout: float) -> None:
        """Until GET url answers 200; fails the test (with the log's end) when the process
        exits first or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if http_status(url) == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.25)
        pytest.fail(f"{self.name}: {url} not ready after {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL every process of the tree at once: a crash, not a shutdown."""
        for process in self.tree():
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=30)

    def stop(self, grace: float = STOP_GRACE_S) -> bool:
        """SIGTERM to the process group, as a terminal's Ctrl-C or a container stop would send it;
        then SIGKILL to whatever of the tree is left. True when the leader exited within `grace`
        seconds of SIGTERM (`stopped_in_time` keeps the answer, `returncode` its exit status)."""
        if self.stopped_in_time is not None:
            return self.stopped_in_time
        children = self.tree()[1:]  # before the leader exits and they are re-parented
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=grace)
            self.stopped_in_time = True
        except subprocess.TimeoutExpired:
            self.stopped_in_time = False
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        # The leader is reaped by Popen above; psutil waits only for the children it left.
        _, left = psutil.wait_procs(children, timeout=5)
        for process in left:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=5)
        return self.stopped_in_time


class Server(ProcessTree):
    """The service on 127.0.0.1 and a free port: `python -m service serve` (the project's own
    command, which checks the models and then becomes `bentoml serve`), or `bentoml serve` of the
    service directly, as a bento's image runs it."""

    def __init__(self, name: str, env: dict[str, str], log: Path, command: str = "service") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        where = ["--host", "127.0.0.1", "--port", str(self.port)]
        if command == "service":
            argv = [sys.executable, "-m", "service", "serve", *where]
        elif command == "bentoml":
            argv = [str(Path(sys.executable).with_name("bentoml")), "serve", "service.service:GanServe", *where]
        else:
            raise ValueError(f"command must be 'service' or 'bentoml', got {command!r}")
        super().__init__(name, argv, log, env=env)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        self.wait_until(f"{self.url}/readyz", timeout)


@contextmanager
def start_server(models_dir: Path, extra_env: dict[str, str], root: Path, name: str = "server",
                 ready_timeout: float = READY_TIMEOUT_S) -> Iterator[Server]:
    """`python -m service serve` of `models_dir` with `extra_env`, ready on entry (its URL is
    `.url`, its log `root/<name>.log`); on exit stopped with its whole process tree. Whether it
    stopped within STOP_GRACE_S of SIGTERM, and how, is left in `.stopped_in_time` and
    `.returncode` for the caller to check."""
    env = server_env({"GANSERVE_MODELS_DIR": str(models_dir), **extra_env})
    server = Server(name, env, root / f"{name}.log")
    try:
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()
