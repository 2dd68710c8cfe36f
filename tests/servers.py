"""Real server processes for tests: started on a free loopback port, awaited until ready, and
stopped with every process they fork. Used by tests/service (one `python -m service serve`) and
tests/deploy (two `bentoml serve` replicas behind nginx); a plain module, importable from both.

BentoML's workers start sessions of their own, so neither a process group nor the leader's exit
reaches them: the tree is walked (psutil, which BentoML itself depends on) and each process left
is killed by its id. psutil refuses to signal a process whose id was reused meanwhile.

Also what reads a server: its /metrics (metric_sum), its CPU (cpu_seconds), and nginx in front of
replicas (find_tool, nginx_config, start_nginx). bench/ imports these too, bench/serve.py among
them, which runs where pytest is not installed (bench/gpu/check.sh's rehearsal): so pytest is
imported only when a test fails (`fail`), never at import.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, Optional

import psutil
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 90  # bentoml's first start on two busy cores
STOP_GRACE_S = 30  # a server must stop this soon after SIGTERM


START_TRIES = 3  # starts on a port some other process took meanwhile, before the test fails
# How a server that could not bind its port says so: Python's OSError (errno 98: BentoML's circus
# arbiter, http.server) and nginx's bind() error alike.
PORT_TAKEN = "Address already in use"


def fail(message: str) -> NoReturn:
    """Fails the test (pytest.fail). pytest is imported here, not at the top: bench scripts import
    this module where pytest is not installed."""
    __tracebackhide__ = True  # pytest reports the caller's line
    import pytest

    pytest.fail(message)


class PortTaken(RuntimeError):
    """The process exited because its port was taken (by another process, after free_port())."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now (the OS picks it). Only right now:
    the port is released before the server binds it, so another process may take it first;
    `start_on_free_port` and `Server.wait_ready` retry such a start on a new port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dead_url() -> Iterator[str]:
    """`http://127.0.0.1:<port>` where nothing answers, for certain while the context lasts: the
    port is held by a socket bound but not listening, so no other process can listen there and
    every connection is refused (a port merely found free could be taken by a server meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def http_status(url: str, timeout: float = 2) -> int:
    """The status of a GET; OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def metric_values(text: str, name: str, /, **labels: str) -> list[float]:
    """The value of every sample named `name` in Prometheus text (a server's /metrics) whose labels
    include `labels`. Sample names, not family names: a counter's samples end in `_total`, a
    histogram's in `_bucket`, `_sum` and `_count`. Empty when no sample matches."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def metric_sum(text: str, name: str, /, **labels: str) -> float:
    """The sum of metric_values: 0 when no sample matches."""
    return sum(metric_values(text, name, **labels), 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process `pid` and of every process it forked that is
    alive now (BentoML's arbiter and workers); 0 when `pid` is gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += times.user + times.system
    return total


# What a test server runs with unless the test says otherwise: one worker (the default is one per
# core: a test that needs two asks), and onnxruntime (auto may pick OpenVINO by a timing, and the
# tests that compare bytes assume one engine; tests/service/test_backends.py covers both).
TEST_SERVER_DEFAULTS = {"GANSERVE_WORKERS": "1", "GANSERVE_BACKEND": "onnxruntime"}


def server_env(extra_env: dict[str, str]) -> dict[str, str]:
    """This environment without the developer's GANSERVE_* settings or the test process's
    Prometheus directory (`bentoml serve` makes its own), plus TEST_SERVER_DEFAULTS and `extra_env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GANSERVE_", "PROMETHEUS_"))}
    env.update(TEST_SERVER_DEFAULTS)
    env.update(extra_env)
    return env


class ProcessTree:
    """A process started in a session of its own, and every process it forks."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: Optional[dict[str, str]] = None, cwd: Path = REPO
    ) -> None:
        self.name, self.log, self.env, self.cwd = name, log, env, cwd
        self._spawn(argv)

    def _spawn(self, argv: list[str]) -> None:
        self.stopped_in_time: Optional[bool] = None  # set by stop()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

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
        exits first or the time runs out. PortTaken when it exited for want of its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                if PORT_TAKEN in self.log_tail():
                    raise PortTaken(f"{self.name}: {self.log_tail()[-300:]}")
                fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if http_status(url) == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.25)
        fail(f"{self.name}: {url} not ready after {timeout} s:\n{self.log_tail()}")

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
        if command == "service":
            self.command = [sys.executable, "-m", "service", "serve"]
        elif command == "bentoml":
            self.command = [str(Path(sys.executable).with_name("bentoml")), "serve", "service.service:GanServe"]
        else:
            raise ValueError(f"command must be 'service' or 'bentoml', got {command!r}")
        self._listen_on(free_port())
        super().__init__(name, self._argv(), log, env=env)

    def _listen_on(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def _argv(self) -> list[str]:
        return [*self.command, "--host", "127.0.0.1", "--port", str(self.port)]

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until /readyz answers 200; a start that lost its port to another process (between
        free_port() and the bind) is restarted on a new port, up to START_TRIES starts."""
        for attempt in range(1, START_TRIES + 1):
            try:
                return self.wait_until(f"{self.url}/readyz", timeout)
            except PortTaken as taken:
                self.stop()
                if attempt == START_TRIES:
                    fail(f"{START_TRIES} starts found their port taken; last: {taken}")
                self._listen_on(free_port())
                self._spawn(self._argv())


# What BentoML logs once per worker when the service's __init__ has returned (models loaded).
WORKER_INITIALIZED = "Service ganserve initialized"


def wait_workers(server: ProcessTree, workers: int, timeout: float = READY_TIMEOUT_S) -> None:
    """Until `workers` workers have loaded their models. /readyz answers as soon as one has: the
    kernel hands connections only to workers that accept, so a late one is not seen by requests,
    and a test that changes the models right away can change them under its first load."""
    deadline = time.monotonic() + timeout
    while server.log.read_text(errors="replace").count(WORKER_INITIALIZED) < workers:
        if time.monotonic() > deadline:
            fail(f"{server.name}: {workers} workers not initialized after {timeout} s:\n{server.log_tail()}")
        time.sleep(0.1)


def start_on_free_port(start: Callable[[int], ProcessTree], ready_path: str, timeout: float) -> tuple[ProcessTree, int]:
    """`start(port)` on a free port, awaited until GET ready_path answers 200; a start that lost
    its port to another process (between free_port() and the bind) is retried on a new port.
    Returns the process and its port; on failure, nothing is left running."""
    for attempt in range(1, START_TRIES + 1):
        port = free_port()
        process = start(port)
        try:
            process.wait_until(f"http://127.0.0.1:{port}{ready_path}", timeout)
            return process, port
        except PortTaken as taken:
            process.stop()
            if attempt == START_TRIES:
                fail(f"{START_TRIES} starts found their port taken; last: {taken}")
        except BaseException:
            process.stop()
            raise
    raise AssertionError("unreachable")


@contextmanager
def running(
    name: str, env: dict[str, str], root: Path, command: str = "service", ready_timeout: float = READY_TIMEOUT_S
) -> Iterator[Server]:
    """A server started with `env` as it is (`command`: `python -m service serve` or plain
    `bentoml serve`), ready on entry (its URL is `.url`, its log `root/<name>.log`); on exit stopped
    with its whole process tree. Whether it stopped within STOP_GRACE_S of SIGTERM, and how, is
    left in `.stopped_in_time` and `.returncode` for the caller to check. Every test that needs a
    real server starts it through here or start_server."""
    server = Server(name, env, root / f"{name}.log", command=command)
    try:
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()


@contextmanager
def start_server(
    models_dir: Path,
    extra_env: dict[str, str],
    root: Path,
    name: str = "server",
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[Server]:
    """`python -m service serve` of `models_dir` with `extra_env` over the servers' base
    environment (server_env), as `running` starts it."""
    env = server_env({"GANSERVE_MODELS_DIR": str(models_dir), **extra_env})
    with running(name, env, root, ready_timeout=ready_timeout) as server:
        yield server


def replica_env(models_dir: Path, home: Path, token: Optional[str] = None, **extra: str) -> dict[str, str]:
    """A scale-out replica's environment (server_env: none of the developer's GANSERVE_* settings):
    the defaults, on the CPU, one worker, onnxruntime, with its own BENTOML_HOME (BentoML keeps its
    metrics files there); with `token` it requires that API token and says a shared cache keys on
    it (GANSERVE_SHARED_CACHE_KEYS_TOKEN), as compose's scale profiles run it; plus `extra`."""
    return server_env(
        dict(
            BENTOML_HOME=str(home),
            BENTOML_DO_NOT_TRACK="true",
            GANSERVE_MODELS_DIR=str(models_dir),
            GANSERVE_DEVICE="cpu",
            GANSERVE_WORKERS="1",
            GANSERVE_BACKEND="onnxruntime",
            **({"GANSERVE_API_TOKEN": token, "GANSERVE_SHARED_CACHE_KEYS_TOKEN": "true"} if token else {}),
            **extra,
        )
    )


def find_tool(name: str) -> Optional[str]:
    """The path of a system tool (nginx, kubectl, docker-compose), or None."""
    # Debian puts nginx in /usr/sbin, which is not on a non-root user's PATH.
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return shutil.which(name, path=path)


NGINX_DIR = REPO / "deploy" / "nginx"


def nginx_config(root: Path, upstreams: list[str], listen: str, log_format: str) -> Path:
    """The compose proxy's config, rendered by its own script from its own template
    (deploy/nginx/render.sh), inside a minimal main config (the nginx image's own nginx.conf plays
    that part in compose) whose access log writes `log_format` for each request."""
    site = root / "ganserve.conf"
    env = {
        "PATH": os.environ["PATH"],
        "GANSERVE_UPSTREAMS": " ".join(upstreams),
        "GANSERVE_PROXY_LISTEN": listen,
        "GANSERVE_PROXY_CACHE_DIR": str(root / "cache"),
    }
    subprocess.run(
        ["sh", str(NGINX_DIR / "render.sh"), str(NGINX_DIR / "ganserve.conf.template"), str(site)],
        env=env,
        check=True,
        capture_output=True,
    )
    main = root / "nginx.conf"
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would switch to `nobody`, who cannot enter pytest's 0700 tmp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(f"""{user}worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} notice;
events {{ worker_connections 256; }}
http {{
    log_format requests '{log_format}';
    access_log {root / "access.log"} requests;
{temp}
    include {site};
}}
""")
    return main


def start_nginx(
    nginx: str, root: Path, upstreams: list[str], log_format: str, timeout: float = 30
) -> tuple[ProcessTree, str]:
    """nginx (the binary `nginx`: find_tool("nginx")) with nginx_config(root, upstreams, ...) on a
    free loopback port, its config checked by `nginx -t` first; ready once GET /readyz through it
    answers 200 (an upstream answered). Everything it writes lies in `root` (the access log in
    root/access.log). Returns the process and its URL; on failure, nothing is left running."""

    def start(port: int) -> ProcessTree:
        config = nginx_config(root, upstreams, f"127.0.0.1:{port}", log_format)
        base = [nginx, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")]
        checked = subprocess.run([*base, "-t"], capture_output=True, text=True)
        if checked.returncode != 0:
            fail(f"nginx -t refused the config:\n{checked.stderr}")
        return ProcessTree("nginx", [*base, "-g", "daemon off;"], root / "nginx.log")

    proxy, port = start_on_free_port(start, "/readyz", timeout)
    return proxy, f"http://127.0.0.1:{port}"
