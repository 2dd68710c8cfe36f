"""Where the CPU of one n = 1 /sample request goes beyond the route's floor, and what that leaves
the target "n = 1 at c = 64: at least 75% of the route floor" (issue 18) on this host.

    .venv/bin/python bench/request_path.py [--models-dir models] [--model mnist] [--seconds 5]

Over HTTP, on a real server in the default layout (bench/probes.py `floors`, wrk at c = 64): the
server's CPU ms per request for POST /sample with n = 0 (parsed, refused with a 400: the floor)
and n = 1 npy. Their difference is what serving one sample adds. In-process, on the same model
with the service's graph threads and gather window, without HTTP: the handler
(`handlers.sample_async`) under 64 concurrent callers, its CPU per request, the rows its batched
runs reached, and the graph's CPU per row at that batch size; then each Python step on its own
(checks, the seed's latents, the npy answer). So the difference splits into the graph's share,
which no serving code can remove (the paper's G runs near the host's sgemm peak), the handler's
Python, and the rest (admission, the answer's headers and bytes through the HTTP stack). The
ceiling printed is the ratio n = 1 could reach if everything but the graph were free.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # bench/ and the repo

from host import describe  # noqa: E402
from probes import floors  # noqa: E402
from servers import start_ganserve  # noqa: E402

from service.core import latents, requests, sampling  # noqa: E402
from service.core.schemas import SampleRequest  # noqa: E402
from service.http import handlers  # noqa: E402
from service.runtime.engine import Engine  # noqa: E402
from service.settings import Settings  # noqa: E402

TARGET = 0.75  # n = 1 req/s over the route floor's, both at c = 64 (bench/targets.py)
CALLERS = 64  # concurrent requests, as wrk's connections at c = 64


def _cpu_us(fn, number: int) -> float:
    """CPU microseconds per call (every thread of this process: the graph's too)."""
    start = time.process_time()
    for _ in range(number):
        fn()
    return (time.process_time() - start) / number * 1e6


def _step_us(fn, number: int = 5000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def _run_loop(coroutine) -> None:
    """On uvloop where installed, as uvicorn serves (asyncio's own loop costs ~2x per task)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


def in_process(models_dir: Path, model_name: str, graph_threads: int, gather_s: float, rounds: int) -> dict:
    engine = Engine(models_dir, "cpu", model_name, graph_threads, only=model_name, gather_s=gather_s)
    model = engine.get(model_name)
    req = SampleRequest(n=1, seed=1, format="npy", model=model_name)

    async def one() -> None:
        response = await handlers.sample_async(engine, req, 1)
        assert response.status_code == 200, response.body

    async def idle() -> None:
        await asyncio.sleep(0)

    async def burst(times: int, call=one) -> None:
        for _ in range(times):
            await asyncio.gather(*[call() for _ in range(CALLERS)])

    def per_call_us(call) -> float:
        return min(_cpu_us(lambda: _run_loop(burst(rounds, call)), 1) / (rounds * CALLERS) for _ in range(3))

    _run_loop(burst(10))  # warm-up: sessions, thread pool, header caches
    batcher = model.generator_async
    runs0, rows0 = batcher.stats.runs, batcher.stats.rows
    # Less the harness's own task per call: uvicorn makes one per request too, the floor's as well.
    handler_us = per_call_us(one) - per_call_us(idle)
    rows_per_run = (batcher.stats.rows - rows0) / max(1, batcher.stats.runs - runs0)
    z = latents.draw(latents.generator(1), model.card.latent, max(1, round(rows_per_run)))
    run = lambda: batcher.run(z)
    run()
    graph_us = min(_cpu_us(run, 200) for _ in range(3)) / len(z)
    _, keep = requests.checked(engine, req)  # the filter as the handler resolves it
    x = model.generate(latents.draw(latents.generator(1), model.card.latent, 1))
    batch = sampling.Batch(x, None, 1, None)
    engine.executor.shutdown(wait=False)
    return {
        "handler": handler_us,
        "rows_per_run": rows_per_run,
        "graph": graph_us,
        "checks": _step_us(lambda: requests.checked(engine, req)),
        "latents": _step_us(lambda: latents.draw(latents.generator(1), model.card.latent, 1)),
        "answer": _step_us(lambda: handlers.respond(requests.answer_of(model, req, batch, 1, keep, 1))),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--model", default="mnist")
    p.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    p.add_argument("--rounds", type=int, default=100, help="bursts of 64 callers per in-process timing")
    args = p.parse_args()
    settings = Settings()
    workers, threads, why = settings.layout()
    with tempfile.TemporaryDirectory(prefix="ganserve-path-") as logs:
        server = start_ganserve(args.models_dir, Path(logs), {})
        try:
            http = floors(server, args.model, args.seconds)
        finally:
            server.stop()
    parts = in_process(args.models_dir, args.model, threads, settings.batch_gather_ms / 1000, args.rounds)
    route, n1 = http["route"]["server_cpu_ms"] * 1000, http["n1"]["server_cpu_ms"] * 1000
    added, graph = n1 - route, parts["graph"]
    python = parts["handler"] - graph
    print(f"host: {describe()}\nlayout: {why}; {threads} graph thread(s) per worker; model {args.model}\n")
    print(
        f"over HTTP, c = 64 (server CPU us per request): route floor {route:.0f} ({http['route']['rps']:,.0f} req/s), "
        f"n = 1 npy {n1:.0f} ({http['n1']['rps']:,.0f} req/s): {http['n1']['rps'] / http['route']['rps']:.0%} of the floor"
    )
    print(f"serving one sample adds {added:.0f} us:")
    print(
        f"  the graph, {parts['rows_per_run']:.1f} rows a run: {graph:6.0f} us a row "
        "(the server's runs are smaller when workers split the connections: a little more a row)"
    )
    print(
        f"  the handler's Python (in-process, {CALLERS} callers): {python:6.0f} us  "
        f"[checks {parts['checks']:.0f}, latents {parts['latents']:.0f}, npy answer {parts['answer']:.0f}, "
        f"batcher and awaits {python - parts['checks'] - parts['latents'] - parts['answer']:.0f}]"
    )
    print(f"  the rest (admission, the answer through the HTTP stack): {added - graph - python:6.0f} us")
    budget = route / TARGET - route
    print(
        f"\n{TARGET:.0%} of the floor allows {budget:.0f} us added; the graph alone takes {graph:.0f}, leaving "
        f"{budget - graph:.0f} us for all the rest (now {added - graph:.0f})."
    )
    print(f"ceiling with everything but the graph free: {route / (route + graph):.0%} of the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
