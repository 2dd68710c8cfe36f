"""Triton Inference Server through PyTriton, with Triton's dynamic batcher (max batch 16, 2 ms queue delay).

    ~/.cache/ganserve-peers/pytriton/bin/python bench/peers/pytriton_server.py --model models/mnist/generator.onnx --port 8003
    curl -s localhost:8003/v2/models/generator/infer -d '{"inputs": [{"name": "n", "shape": [1, 1], "datatype": "INT64",
        "data": [4]}, {"name": "seed", "shape": [1, 1], "datatype": "UINT64", "data": [7]}]}'

nvidia-pytriton 0.7.0 bundles a real Triton (2.51: its C++ HTTP front end, scheduler and dynamic
batcher); the inference callable runs in this Python process, fed by Triton's Python backend
over shared memory. As PyTriton's docs recommend: `with Triton(config=TritonConfig(...)) as
triton:`, `triton.bind(model_name, infer_func, inputs=[Tensor(...)], outputs=[Tensor(...)],
config=ModelConfig(max_batch_size=16, batcher=DynamicBatcher(max_queue_delay_microseconds=2000)))`,
then `triton.serve()`. Requests are the Open Inference Protocol (KServe V2); answers are V2 with
binary tensors when the request asks for them (`"parameters": {"binary_data_output": true}`).
Changed, and why:
- The callable is not wrapped in PyTriton's `@batch`, which concatenates the batch's inputs and
  splits the outputs one row per request: each request here asks for its own number of samples.
  Undecorated, the callable gets the batch as a list of requests (PyTriton's documented form for
  that) and answers a list: latents concatenated, one model run, the output split back by n.
- Scalars are sent as shape [1, 1]: the dynamic batcher needs a leading batch axis.
- HTTP, gRPC and metrics bind 127.0.0.1 (gRPC and metrics on free ports); SIGTERM takes the
  same path as Ctrl+C (`serve()` then stops Triton and its backend).
- The Python backend loaded the system's libpython (3.11.2) against this venv's 3.11.7 standard
  library and crashed, so the interpreter's own libpython directory goes first on LD_LIBRARY_PATH.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sysconfig

import numpy as np

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    libdir = sysconfig.get_config_var("LIBDIR")  # before Triton starts: its backend inherits the environment
    os.environ["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p)

    import onnxruntime as ort
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    z_input, x_output = session.get_inputs()[0], session.get_outputs()[0]

    def infer(requests):
        ns = [int(r["n"].reshape(-1)[0]) for r in requests]
        seeds = [int(r["seed"].reshape(-1)[0]) for r in requests]
        if not all(1 <= n <= 16384 for n in ns):
            raise ValueError("n must be in 1..16384")
        z = np.concatenate([latents(n, seed, z_input.shape[1]) for n, seed in zip(ns, seeds)])
        x = session.run(None, {z_input.name: z})[0]
        return [{"x": part} for part in np.split(x, np.cumsum(ns)[:-1])]

    def stop(signum, frame):
        raise KeyboardInterrupt  # Triton.serve() stops the server and its backend on it

    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.WARNING)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        grpc_address="127.0.0.1",
        grpc_port=free_port(),
        metrics_address="127.0.0.1",
        metrics_port=free_port(),
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="generator",
            infer_func=infer,
            inputs=[Tensor(name="n", dtype=np.int64, shape=(1,)), Tensor(name="seed", dtype=np.uint64, shape=(1,))],
            outputs=[Tensor(name="x", dtype=np.float32, shape=tuple(x_output.shape[1:]))],
            config=ModelConfig(max_batch_size=16, batcher=DynamicBatcher(max_queue_delay_microseconds=2000)),
        )
        triton.serve()


if __name__ == "__main__":
    main()
