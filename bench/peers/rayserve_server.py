"""Ray Serve with its own batching: `@serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)`.

    ~/.cache/ganserve-peers/rayserve/bin/python bench/peers/rayserve_server.py --model models/mnist/generator.onnx --port 8002
    curl -s -X POST localhost:8002/sample -H 'content-type: application/json' -d '{"n": 4, "seed": 7}' -o x.npy

As Ray Serve's docs recommend ("Dynamic Request Batching"): a `@serve.deployment` class loads the
model in `__init__`; `__call__` takes the Starlette request and awaits a `@serve.batch` method
that gets a list of requests and returns a list of answers in the same order; the app is
`Deployment.bind(...)` and `serve.run(app, route_prefix=...)`. A Starlette `Response` sets the
content type. One replica (the docs' default), which gets all the cores through --threads.
Changed, and why:
- The batch method concatenates every request's latents, runs the model once and splits the
  output back by each request's n, so requests asking for different n share a batch correctly.
- `max_ongoing_requests=64` (default 5): `@serve.batch` never builds a batch larger than the
  requests a replica may hold at once, so the default would cap batches at 5, under the 16 asked.
- Ray is started here, by this process (`ray.init` rather than `ray start` + `serve run`), so
  its GCS, raylet and workers are this process's descendants (their CPU is measured with it) and
  stop with it: SIGTERM runs `serve.shutdown()` and `ray.shutdown()`.
- Loopback: the node IP is 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) and the HTTP proxy
  binds 127.0.0.1 (Ray's workers' own gRPC servers still listen on every interface; only loopback
  is used); no dashboard, usage stats off, token auth off (RAY_AUTH_MODE=disabled): a local bench.
- GET /sample answers 200 once the replica runs (the bench's readiness probe).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# A one-node Ray on loopback: with this off, Ray takes 127.0.0.1 as the node's address (otherwise
# it resolves the machine's interface address and its processes talk over that).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import argparse
import io
import math
import signal
import threading

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


@serve.deployment(max_ongoing_requests=64)
class Generator:
    def __init__(self, model: str, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.dim = self.session.get_inputs()[0].shape[1]

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def generate(self, requests: list[tuple[int, int]]) -> list[np.ndarray]:
        z = np.concatenate([latents(n, seed, self.dim) for n, seed in requests])
        x = self.session.run(None, {self.input: z})[0]
        return np.split(x, np.cumsum([n for n, _ in requests])[:-1])

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse("ready")
        body = await request.json()
        n, seed = int(body.get("n", 1)), int(body.get("seed", 0))
        if not (1 <= n <= 16384 and 0 <= seed < 2**64):
            return PlainTextResponse("n must be in 1..16384 and seed in 0..2**64-1", status_code=400)
        buffer = io.BytesIO()
        np.save(buffer, await self.generate((n, seed)))
        return Response(buffer.getvalue(), media_type="application/octet-stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    ray.init(include_dashboard=False, num_cpus=len(os.sched_getaffinity(0)), logging_level="warning")
    # After ray.init, which installs its own SIGTERM handler (it logs the signal and exits at once,
    # leaving Ray's dashboard and runtime-env agents running).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(Generator.bind(os.path.abspath(args.model), args.threads), route_prefix="/sample")
        print(f"ready on http://127.0.0.1:{args.port}/sample", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
