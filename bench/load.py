"""Load generation with `wrk` (Debian's package): one run at one concurrency against one URL.

wrk is a C client on epoll: on two cores it drives a Python server far harder than any Python
client can. Each run also reports wrk's own CPU use (from the kernel's accounting of our reaped
children): wrk runs one thread here, so near 100% would mean the client, not the server, was the
limit.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_json.lua"
MARK = "WRK_JSON "


class LoadError(RuntimeError):
    pass


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise LoadError("wrk is not installed: `apt-get install -y wrk` (Debian), then rerun")
    return path


@dataclass
class Result:
    requests: int  # completed with a 2xx
    errors: int  # connect, read, write, timeouts and non-2xx answers
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # wrk's CPU time / wall time (1.0 = one core, wrk's whole thread)
    answered: int = 0  # completed with any status (a route floor counts its 4xx answers)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "rps": self.rps}


def run_wrk(url: str, connections: int, seconds: float, body: dict | None = None, timeout_s: float = 60) -> Result:
    """POST `body` as JSON on every request (GET when None) over `connections` connections."""
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(body, f)
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:.0f}s",
        "-s",
        str(SCRIPT),
        url,
    ]
    if body is not None:
        command += ["--", f.name]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    finally:
        Path(f.name).unlink(missing_ok=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARK)), None)
    if out.returncode != 0 or line is None:
        raise LoadError(f"wrk failed on {url} ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    s = json.loads(line[len(MARK) :])
    errors = sum(s["errors"].values())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Result(
        requests=s["requests"] - s["errors"]["status"],
        errors=errors,
        seconds=s["duration_us"] / 1e6,
        p50_ms=s["latency_us"]["p50"] / 1e3,
        p99_ms=s["latency_us"]["p99"] / 1e3,
        client_cpu=cpu / wall,
        answered=s["requests"],
    )


def settle(url: str, body: dict, timeout_s: float = 300) -> None:
    """Wait out the work wrk left behind: requests it abandoned at the end of a run are still being
    computed, and would slow the next point. One request through the same queue waits for them."""
    import httpx

    for _ in range(2):
        try:
            httpx.post(url, json=body, timeout=timeout_s)
        except httpx.HTTPError:
            return  # a dead server: the next run reports it
