"""Peak bytes one request allocates, per answer format, at n = 4096 (tracemalloc), next to the
size of its answer: where the copies are (docs/PERFORMANCE.md#memory-per-request) and what
admission control charges (the format table's peak_bytes_per_value, service/core/formats.py, must
not undercount these).

    .venv/bin/python bench/request_memory.py                 # models/mnist, n = 4096
    .venv/bin/python bench/request_memory.py --model-dir /tmp/stand-ins/mnist --n 1024
    .venv/bin/python bench/request_memory.py --http          # also through uvicorn on the loopback
    .venv/bin/python bench/request_memory.py --http --n 4096 1024 --formats json --rounds 5   # and json's time

The request runs through handlers.sample, what a worker thread runs for a large /sample (latents,
the generator, encoding), and its answer is then sent: the peak covers the whole body being
produced, which for a streamed json answer (handlers.STREAM_MIN_VALUES; the HTTP routes ask for
streams) happens while it is sent, block by block. Two ways to send:

- asgi (always): the response's own ASGI call, as Starlette makes it (a streamed body's blocks
  come from a worker thread, one at a time), into a `send` that counts the bytes and drops them.
- http (--http): a uvicorn server on 127.0.0.1 in this process, read by http.client in 64 KB
  reads: adds what uvicorn and asyncio's transport hold of a body on its way out.

Two peaks. `traced`: tracemalloc's, exact for what numpy, orjson and zlib allocate, but blind to
onnxruntime's own buffers: G's output array (a view of onnxruntime's memory up to 1,024 rows; above
that, the micro-batcher's chunks are onnxruntime's and only their concatenation is numpy's) and the
graph's activations. `rss`: the process's peak resident memory over the request (VmHWM, reset
just before it, minus VmRSS then), which sees everything: onnxruntime's buffers and the graph's
activations (per graph run, up to the micro-batcher's 1,024 rows: shared by the requests of a
batch, not charged per request), and heap the allocator keeps. Each request runs in a fresh
process, warmed up by a one-sample request, under the server's allocator settings
(service/runtime/memory.py's ALLOCATOR_ENV). Read `traced` for where the copies are, `rss` for what a
worker pays.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.concurrency import run_in_threadpool

from service.core import requests
from service.core.schemas import SampleRequest
from service.http import handlers
from service.runtime import memory
from service.runtime.engine import Engine


def host() -> str:
    """CPU model and vector extensions, from lscpu (docs/PERFORMANCE.md#hosts states every figure's host)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown host"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    vector = [f for f in flags if f.startswith(("avx", "sse4", "fma", "amx"))]
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs, {' '.join(vector)}"


async def _send_all(response) -> int:
    """Runs the response's ASGI call as a server would (ASGI spec 2.3, as uvicorn's h11 states);
    returns the body's length."""
    sent = 0
    never = asyncio.Event()

    async def receive():
        await never.wait()  # no disconnect: the client reads everything
        return {"type": "http.disconnect"}

    async def send(message) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += len(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "method": "POST",
        "path": "/sample",
        "headers": [],
    }
    await response(scope, receive, send)
    return sent


def _asgi(engine: Engine, req: SampleRequest, stream: bool) -> int:
    return asyncio.run(_send_all(handlers.sample(engine, req, 20, stream)))


class HttpServer:
    """uvicorn serving POST /sample through handlers.sample in a worker thread, as routes.py does
    for a large request (without admission, the batcher or BentoML's middleware)."""

    def __init__(self, engine: Engine):
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        async def sample(request):
            body = json.loads(await request.body())
            stream = body.pop("stream")
            return await run_in_threadpool(handlers.sample, engine, SampleRequest.model_validate(body), 20, stream)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            Starlette(routes=[Route("/sample", sample, methods=["POST"])]),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def request(self, body: dict, stream: bool) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        conn.request("POST", "/sample", json.dumps({**body, "stream": stream}), {"content-type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()[:300]
        size, buffer = 0, bytearray(1 << 16)
        while True:
            got = response.readinto(buffer)
            if not got:
                break
            size += got
        conn.close()
        return size

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_one(model_dir: Path, case: dict) -> dict:
    """One request in this (fresh) process: warmed up by a request of one sample in the same way,
    then measured. A fresh process per request, so that the RSS peak is not hidden by heap an
    earlier, larger request left resident."""
    folder = model_dir.resolve()
    engine = Engine(folder.parent, "cpu", folder.name, 2)
    server = HttpServer(engine) if case["how"] == "http" else None
    try:

        def send(n: int) -> int:
            body = {"model": folder.name, "n": n, "seed": 1, "format": case["format"], "scores": case["scores"]}
            if server is not None:
                return server.request(body, case["stream"])
            return _asgi(engine, SampleRequest.model_validate(body), case["stream"])

        send(1)  # warm: caches, first-call allocations
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now (Linux)
        before = _status_kb("VmRSS")
        tracemalloc.start()
        started = time.perf_counter()
        answer = send(case["n"])
        seconds = time.perf_counter() - started  # a first large request: not a fair timing (timings())
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"answer": answer, "traced": traced, "rss": (_status_kb("VmHWM") - before) * 1024, "seconds": seconds}
    finally:
        if server is not None:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("models/mnist"))
    parser.add_argument("--n", type=int, nargs="+", default=[4096])
    parser.add_argument("--http", action="store_true", help="also measure through uvicorn on the loopback")
    parser.add_argument("--formats", nargs="+", default=["json", "npy", "png"])
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="then time json whole against streamed over http, interleaved, this many rounds",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a case as JSON: measured in this process
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in memory.ALLOCATOR_ENV.items()):  # glibc reads them at start
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **memory.ALLOCATOR_ENV})
    if args.one:
        print(json.dumps(measure_one(args.model_dir, json.loads(args.one))))
        return 0
    folder = args.model_dir.resolve()
    model = Engine(folder.parent, "cpu", folder.name, 1).get(folder.name)
    print(f"host: {host()}")
    print(
        f"model {model.name}: {model.card.sample.size} values per sample, latent {model.card.latent.dim}; "
        f"json streams above {handlers.STREAM_MIN_VALUES} sample values; a fresh process per request"
    )
    print(
        f"{'request':<34}{'answer MB':>10}{'traced MB':>10}{'/answer':>9}{'B/value':>9}{'rss MB':>8}"
        f"{'/answer':>9}{'charged MB':>12}"
    )
    wanted = [f for f in args.formats if f != "png" or model.card.sample.kind == "image"]
    for n in args.n:
        values = n * model.card.sample.size
        for fmt in wanted:
            for scores in (False, True) if fmt == "json" else (False,):
                for way, stream in [("whole", False)] + ([("stream", True)] if fmt == "json" else []):
                    for how in ["asgi"] + (["http"] if args.http else []):
                        case = {"n": n, "format": fmt, "scores": scores, "stream": stream, "how": how}
                        out = subprocess.run(
                            [sys.executable, __file__, "--model-dir", str(folder), "--one", json.dumps(case)],
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                        got = json.loads(out.strip().splitlines()[-1])
                        answer, peak, rss = got["answer"], got["traced"], got["rss"]
                        charged = requests.charge(model.card, n, fmt)
                        name = f"n={n} {fmt}{' +scores' if scores else ''} {way if fmt == 'json' else ''} {how}"
                        print(
                            f"{name:<34}{answer / 1e6:>10.2f}{peak / 1e6:>10.2f}{peak / answer:>9.2f}"
                            f"{peak / values:>9.2f}{rss / 1e6:>8.1f}{rss / answer:>9.2f}{charged / 1e6:>12.2f}",
                            flush=True,
                        )
                        if (
                            charged < peak
                        ):  # not rss: it holds the graph's activations, which are per run, not per request
                            print(
                                f"  ! admission charges less than measured for {name}: raise its PEAK_BYTES_PER_VALUE"
                            )
    if args.rounds:
        timings(folder, args.n, args.rounds)
    return 0


def timings(folder: Path, sizes: list[int], rounds: int) -> None:
    """Milliseconds of json answers whole and streamed, through uvicorn on the loopback in one
    warmed-up process, interleaved round by round (the fresh processes above time first calls)."""
    engine = Engine(folder.parent, "cpu", folder.name, 2)
    server = HttpServer(engine)
    try:
        for n in sizes:
            body = {"model": folder.name, "n": n, "seed": 1, "format": "json", "scores": False}
            times = {False: [], True: []}
            for _ in range(rounds + 1):  # the first round warms up
                for stream in (False, True):
                    started = time.perf_counter()
                    server.request(body, stream)
                    times[stream].append(time.perf_counter() - started)
            whole, streamed = (sorted(t[1:])[len(t[1:]) // 2] * 1e3 for t in (times[False], times[True]))
            print(f"n={n} json over http, median of {rounds}: whole {whole:.0f} ms, streamed {streamed:.0f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
