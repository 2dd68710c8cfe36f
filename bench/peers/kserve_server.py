"""KServe's Python model server (the `kserve` package) around the generator, standalone: no batching.

    ~/.cache/ganserve-peers/kserve/bin/python bench/peers/kserve_server.py --model models/mnist/generator.onnx --port 8004
    curl -s -X POST localhost:8004/v1/models/generator:predict -d '{"n": 4, "seed": 7}' -o x.npy

As KServe's docs recommend for a custom Python model ("Deploy Custom Python Serving Runtime"):
a `kserve.Model` subclass that loads in `load()` and sets `self.ready`, a `predict` for the
request, and `ModelServer().start([model])`. The request goes to the V1 route,
`POST /v1/models/generator:predict`; KServe passes the decoded JSON body to `predict` as it is,
and answers bytes returned from `predict` as the body unchanged, with the headers `predict` adds
to `response_headers` (`Model(name, return_response_headers=True)`): here the .npy bytes.
No batching: KServe's batcher is an agent sidecar in the InferenceService pod on Kubernetes
(`spec.predictor.batcher`), not part of the model server, so a standalone server has none.
`predict` is a plain `def`, as in the docs' example: KServe calls it on the event loop, so
requests run one at a time.
Changed, and why:
- Binds 127.0.0.1: KServe 0.21 hard-codes 0.0.0.0 for its REST server (RESTServer's uvicorn
  config) and has no option for it, so the host is set on that config before it binds.
- No gRPC server (`enable_grpc=False`; it would bind every interface on 8081), no latency log
  line per request (`enable_latency_logging=False`).
- onnxruntime's intra-op threads from --threads. SIGTERM: KServe's and uvicorn's own handling.
"""

from __future__ import annotations

import argparse
import io
import math
import os

import numpy as np

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8004)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    import kserve
    import onnxruntime as ort
    from kserve.errors import InvalidInput
    from kserve.protocol.rest import server as rest_server

    class Generator(kserve.Model):
        def __init__(self, name: str):
            super().__init__(name, return_response_headers=True)

        def load(self) -> bool:
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            self.session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
            self.input = self.session.get_inputs()[0].name
            self.dim = self.session.get_inputs()[0].shape[1]
            self.ready = True
            return self.ready

        def predict(self, payload: dict, headers=None, response_headers=None) -> bytes:
            n, seed = int(payload.get("n", 1)), int(payload.get("seed", 0))
            if not (1 <= n <= 16384 and 0 <= seed < 2**64):
                raise InvalidInput("n must be in 1..16384 and seed in 0..2**64-1")
            x = self.session.run(None, {self.input: latents(n, seed, self.dim)})[0]
            buffer = io.BytesIO()
            np.save(buffer, x)
            response_headers["content-type"] = "application/octet-stream"
            return buffer.getvalue()

    init = rest_server.RESTServer.__init__

    def loopback_init(self, *a, **kw):
        init(self, *a, **kw)
        self.config.host = "127.0.0.1"  # read when uvicorn binds, after this

    rest_server.RESTServer.__init__ = loopback_init

    model = Generator("generator")
    model.load()
    kserve.ModelServer(http_port=args.port, workers=1, enable_grpc=False, enable_latency_logging=False).start([model])


if __name__ == "__main__":
    main()
