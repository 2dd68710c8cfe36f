"""The server a user would write by hand, for comparison: Starlette + uvicorn around the torch
generator, the same request body as ganserve's POST /sample (`n`, `seed`, `format`).

    .venv/bin/python bench/baseline_torch_server.py --preset mnist-paper --port 3100

Written the plain way on purpose: the model runs in Starlette's thread pool, torch keeps its
default threads, `tolist()` into JSONResponse, np.save for npy, PIL for a png grid. No batching.
Untrained weights: the cost of a forward pass does not depend on their values. Needs torch (the
`train` extra), which is why this lives in bench/ and never in service/.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

import numpy as np
import torch
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from training.networks import build_generator
from training.presets import resolve


def build_app(preset: str) -> Starlette:
    network = resolve(preset).network
    G = build_generator(network).eval()
    z_dim = network.latent.dim

    def png_grid(x: np.ndarray) -> bytes:
        n, c, h, w = x.shape  # (n, C, H, W) in [0, 1]
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        canvas = np.zeros((rows * h, cols * w, c), np.uint8)
        for i in range(n):
            r, k = divmod(i, cols)
            canvas[r * h : (r + 1) * h, k * w : (k + 1) * w] = (x[i].transpose(1, 2, 0) * 255).clip(0, 255)
        buffer = io.BytesIO()
        Image.fromarray(canvas[:, :, 0] if c == 1 else canvas).save(buffer, format="PNG")
        return buffer.getvalue()

    def generate(n: int, seed: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return G(torch.randn(n, z_dim, generator=gen)).numpy()  # (n, z_dim) -> (n, *sample_shape)

    async def sample(request: Request) -> Response:
        body = await request.json()
        n, fmt = int(body.get("n", 16)), body.get("format", "json")
        x = await run_in_threadpool(generate, n, int(body.get("seed", 0)))  # off the event loop
        if fmt == "npy":
            buffer = io.BytesIO()
            np.save(buffer, x)
            return Response(buffer.getvalue(), media_type="application/x-npy")
        if fmt == "png":
            return Response(png_grid(x), media_type="image/png")
        return JSONResponse({"samples": x.tolist()})

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/sample", sample, methods=["POST"]), Route("/livez", livez)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-paper", help="training preset whose generator to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3100)
    args = parser.parse_args()
    uvicorn.run(build_app(args.preset), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
