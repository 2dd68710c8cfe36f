"""The naive server: FastAPI + uvicorn, one worker, no batching, onnxruntime on the CPU.

    ~/.cache/ganserve-peers/fastapi/bin/python bench/peers/fastapi_server.py --model models/mnist/generator.onnx --port 8000
    curl -s -X POST localhost:8000/sample -H 'content-type: application/json' -d '{"n": 4, "seed": 7}' -o x.npy

As FastAPI's docs recommend: the model is loaded once in a `lifespan` handler ("Lifespan Events",
the ML-model example), the request is a pydantic model, and the endpoint is a plain `def`, which
FastAPI runs in its thread pool so the event loop stays free. A `Response` with raw bytes sets
our own content type ("Custom Response"). uvicorn[standard] (uvloop, httptools) as `fastapi[standard]`
installs it; `uvicorn.run(app, ...)` from the script, one worker.
Changed: binds 127.0.0.1 only; onnxruntime's intra-op threads from --threads. Concurrent requests
each run the model at once in the thread pool (that is the naive server's cost).
"""

from __future__ import annotations

import argparse
import io
import math
import os
from contextlib import asynccontextmanager

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel, Field

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


class SampleRequest(BaseModel):
    n: int = Field(1, ge=1, le=16384)
    seed: int = Field(0, ge=0, le=2**64 - 1)


def build_app(model: str, threads: int) -> FastAPI:
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        state.update(session=session, input=session.get_inputs()[0].name, dim=session.get_inputs()[0].shape[1])
        yield
        state.clear()

    app = FastAPI(lifespan=lifespan)

    @app.post("/sample")
    def sample(request: SampleRequest) -> Response:
        z = latents(request.n, request.seed, state["dim"])
        x = state["session"].run(None, {state["input"]: z})[0]
        buffer = io.BytesIO()
        np.save(buffer, x)
        return Response(buffer.getvalue(), media_type="application/octet-stream")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    # uvicorn stops cleanly on SIGTERM (and SIGINT) by itself.
    uvicorn.run(build_app(args.model, args.threads), host="127.0.0.1", port=args.port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
