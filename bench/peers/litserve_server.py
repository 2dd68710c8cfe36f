"""LitServe (Lightning AI) with its own batching: max_batch_size=16, batch_timeout=0.002 s.

    ~/.cache/ganserve-peers/litserve/bin/python bench/peers/litserve_server.py --model models/mnist/generator.onnx --port 8001
    curl -s -X POST localhost:8001/sample -H 'content-type: application/json' -d '{"n": 4, "seed": 7}' -o x.npy

As LitServe's docs recommend: a `ls.LitAPI` with `setup` (load the model once per worker),
`decode_request`, `predict`, `encode_response`; batching set on the LitAPI (`max_batch_size`,
`batch_timeout`: LitServer's own arguments for them are deprecated in 0.2.x), with `batch` and
`unbatch` overridden because the requests do not stack (each asks for its own n); a `Response`
from `encode_response` for a non-JSON body (the docs' image example); `LitServer(api,
accelerator="cpu", workers_per_device=1)` and `server.run(port=...)`.
Changed, and why:
- predict draws every request's latents, concatenates them, runs the model once, and splits the
  output back by each request's n: batches of requests asking for different n stay correct.
- host 127.0.0.1 (LitServe's default is 0.0.0.0); no client.py written into the working directory
  (`generate_client_file=False`); onnxruntime's intra-op threads from --threads.
- SIGTERM is mapped to LitServe's own Ctrl+C path: by default SIGTERM kills only the main process
  and leaves its inference worker, its uvicorn process and its multiprocessing manager running.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import signal

import litserve as ls
import numpy as np
import onnxruntime as ort
from fastapi import Response

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


class GeneratorAPI(ls.LitAPI):
    def __init__(self, model: str, threads: int, **kwargs):
        super().__init__(**kwargs)
        self.model, self.threads = model, threads

    def setup(self, device):
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        self.session = ort.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.dim = self.session.get_inputs()[0].shape[1]

    def decode_request(self, request):
        n, seed = int(request.get("n", 1)), int(request.get("seed", 0))
        if not (1 <= n <= 16384 and 0 <= seed < 2**64):
            raise ValueError("n must be in 1..16384 and seed in 0..2**64-1")
        return n, seed

    def batch(self, inputs):
        return list(inputs)  # [(n, seed), ...]: the latents are drawn in predict, one stream per request

    def predict(self, requests):
        z = np.concatenate([latents(n, seed, self.dim) for n, seed in requests])
        x = self.session.run(None, {self.input: z})[0]
        return np.split(x, np.cumsum([n for n, _ in requests])[:-1])

    def unbatch(self, output):
        return output

    def encode_response(self, x):
        buffer = io.BytesIO()
        np.save(buffer, x)
        return Response(buffer.getvalue(), media_type="application/octet-stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    main_pid = os.getpid()

    def stop(signum, frame):
        if os.getpid() != main_pid:
            raise SystemExit(0)  # a forked uvicorn process re-raising the signal it caught: just exit
        raise KeyboardInterrupt  # LitServer.run's graceful shutdown: stops its workers and manager

    signal.signal(signal.SIGTERM, stop)
    api = GeneratorAPI(args.model, args.threads, max_batch_size=16, batch_timeout=0.002, api_path="/sample")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
