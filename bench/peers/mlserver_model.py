"""Seldon MLServer with a custom runtime and MLServer's adaptive batching (max_batch_size 16, max_batch_time 2 ms).

    ~/.cache/ganserve-peers/mlserver/bin/python bench/peers/mlserver_model.py --model models/mnist/generator.onnx --port 8005
    curl -s localhost:8005/v2/models/generator/infer -H 'content-type: application/json' -d '{"inputs": [{"name": "n",
        "shape": [1, 1], "datatype": "INT64", "data": [4]}, {"name": "seed", "shape": [1, 1], "datatype": "UINT64", "data": [7]}]}'

As MLServer's docs recommend ("Serving a custom model"): an `MLModel` subclass with `async def
load()` and `async def predict(payload: InferenceRequest) -> InferenceResponse`, the tensors
read and written with `NumpyCodec`; a folder with `settings.json` (server) and, in a folder of
the model's name, `model-settings.json` (name, implementation, `parameters.uri`,
`max_batch_size`, `max_batch_time`), served with `mlserver start FOLDER`. The inference runs in
MLServer's default one parallel worker process. This script writes that folder into a temporary directory at
start-up (removed at exit) and runs what `mlserver start` runs, in this process.
Requests and answers are the Open Inference Protocol (V2) in JSON: MLServer's REST has no binary
tensor extension, so the answer is JSON, n x 784 numbers.
Where MLServer's batching cannot do what the others do: its adaptive batcher concatenates the
requests' inputs and splits the output back by each request's input batch size (here 1), so the
output must hold one row per request, all of one shape. The model answers each request x of
shape [1, n, 1, 28, 28] (the client drops the leading 1), and a batch whose requests ask for
different n is refused with an error rather than answered wrongly. Under the benchmark's load
every request of a run has the same n.
Changed, and why: host 127.0.0.1 (MLServer's default is 0.0.0.0) with gRPC and metrics on free
ports there; onnxruntime's intra-op threads from --threads (as a model-settings `extra` parameter);
MLServer's default settings otherwise (`debug` logging included). uvloop is pinned to 0.21.0 in
this env: with 0.22+ MLServer 1.7.1's inference worker dies at start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


class GeneratorRuntime(MLModel):
    async def load(self) -> bool:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.settings.parameters.extra.get("threads", 1))
        self.session = ort.InferenceSession(self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.dim = self.session.get_inputs()[0].shape[1]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {i.name: NumpyCodec.decode_input(i).reshape(-1) for i in payload.inputs}
        ns, seeds = [int(n) for n in inputs["n"]], [int(s) for s in inputs["seed"]]
        if len(set(ns)) != 1 or not 1 <= ns[0] <= 16384:
            raise MLServerError(
                f"every request in a batch must ask for the same n, in 1..16384 (got {sorted(set(ns))}): "
                "MLServer's adaptive batcher splits the output one row per request"
            )
        z = np.concatenate([latents(n, seed, self.dim) for n, seed in zip(ns, seeds)])
        x = self.session.run(None, {self.input: z})[0]
        x = x.reshape(len(ns), ns[0], *x.shape[1:])  # one row per request: [requests, n, 1, 28, 28]
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("x", x)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8005)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="mlserver-peer-"))
    try:
        settings = {
            "host": "127.0.0.1",
            "http_port": args.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
        model_settings = {
            "name": "generator",
            "implementation": "mlserver_model.GeneratorRuntime",
            "max_batch_size": 16,
            "max_batch_time": 0.002,
            "parameters": {"uri": os.path.abspath(args.model), "extra": {"threads": args.threads}},
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        (folder / "generator").mkdir()  # the docs' layout: one folder per model, named after it
        (folder / "generator" / "model-settings.json").write_text(json.dumps(model_settings))
        # The inference worker is a spawned process: it imports this module by name.
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        sys.path.insert(0, here)

        from mlserver.cli.main import main as mlserver_main  # `mlserver start FOLDER`, signals handled there

        sys.argv = ["mlserver", "start", str(folder)]
        try:
            mlserver_main()
        except SystemExit as e:
            if e.code not in (0, None):
                raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
