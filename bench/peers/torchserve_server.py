"""TorchServe with its own batching (batchSize 16, maxBatchDelay 2 ms), running the ONNX generator with onnxruntime.

    ~/.cache/ganserve-peers/torchserve/bin/python bench/peers/torchserve_server.py --model models/mnist/generator.onnx --port 8006
    curl -s -X POST localhost:8006/predictions/generator -H 'content-type: application/json' -d '{"n": 4, "seed": 7}' -o x.npy

TorchServe 0.12 (the last release; the project is in limited maintenance): a Java (Netty)
front end that batches requests and hands each batch to a Python backend worker. As its docs
recommend: a custom handler packed with the model into an archive by `torch-model-archiver`
(`--serialized-file`, `--handler`, `--config-file model-config.yaml` carrying `batchSize`,
`maxBatchDelay`, `minWorkers`/`maxWorkers` and the handler's own settings), a model store, a
`config.properties` for the addresses, and `torchserve --start --foreground`. The handler is this
file's module-level `handle(data, context)` (TorchServe's documented module entry point): it gets
the batch as a list of requests and answers a list, one .npy body per request
(`context.set_response_content_type`), so requests asking for different n share a batch: latents
concatenated, one model run, the output split back by n. This script builds the archive, store and
config in a temporary directory (removed at exit) and runs TorchServe on them.
Changed, and why: every address (inference, management, metrics) on 127.0.0.1 (TorchServe's
default inference address is also loopback; the others get free ports); token auth off and no
config snapshots (`--disable-token-auth --ncs`) for a local benchmark; TorchServe's pid file and
log files go to the temporary directory (TMPDIR, LOG_LOCATION), so it cannot clash with another
TorchServe on the machine nor write ./logs; gRPC on free loopback ports; one worker (the docs'
default is one per core: with onnxruntime's intra-op threads from --threads given the cores, one
worker uses them all, as in the other peers). SIGTERM runs `torchserve --stop`.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np

LOW, HIGH = -math.sqrt(3.0), math.sqrt(3.0)  # the mnist card's uniform latent (models/mnist/model.json)
_model: dict = {}


def latents(n: int, seed: int, dim: int) -> np.ndarray:
    """ganserve's latents for a seed (service/core/latents.py): PCG64, U(low, high) in float64, cast once."""
    z = np.random.Generator(np.random.PCG64(seed)).random((n, dim))
    return (LOW + (HIGH - LOW) * z).astype(np.float32)


def _initialize(context) -> None:
    import os

    import onnxruntime as ort

    model_dir = context.system_properties["model_dir"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(context.model_yaml_config.get("handler", {}).get("threads", 1))
    path = os.path.join(model_dir, context.manifest["model"]["serializedFile"])
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    _model.update(session=session, input=session.get_inputs()[0].name, dim=session.get_inputs()[0].shape[1])


def handle(data, context):
    """TorchServe's module-level entry point: `data` is the batch, one dict per request."""
    if not _model:
        _initialize(context)
    if data is None:
        return None
    requests = []
    for row in data:
        body = row.get("body") if row.get("body") is not None else row.get("data")
        if isinstance(body, (bytes, bytearray)):
            body = json.loads(body)
        n, seed = int(body.get("n", 1)), int(body.get("seed", 0))
        if not (1 <= n <= 16384 and 0 <= seed < 2**64):
            raise ValueError("n must be in 1..16384 and seed in 0..2**64-1")
        requests.append((n, seed))
    z = np.concatenate([latents(n, seed, _model["dim"]) for n, seed in requests])
    x = _model["session"].run(None, {_model["input"]: z})[0]
    answers = []
    for i, part in enumerate(np.split(x, np.cumsum([n for n, _ in requests])[:-1])):
        buffer = io.BytesIO()
        np.save(buffer, part)
        answers.append(buffer.getvalue())
        context.set_response_content_type(i, "application/octet-stream")
    return answers


def main() -> None:
    import argparse
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=8006)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    bindir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="torchserve-peer-"))
    # TorchServe's pid file (TMPDIR) and its log files (LOG_LOCATION, METRICS_LOCATION; else ./logs) go
    # to the temporary directory; its console log still reaches stdout.
    env = {
        **os.environ,
        "TMPDIR": str(work),
        "LOG_LOCATION": str(work / "logs"),
        "METRICS_LOCATION": str(work / "logs"),
    }
    process = None
    try:
        store = work / "store"
        store.mkdir()
        (work / "model-config.yaml").write_text(
            "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 16\nmaxBatchDelay: 2\nresponseTimeout: 300\n"
            f"handler:\n  threads: {args.threads}\n"
        )
        (work / "config.properties").write_text(
            f"inference_address=http://127.0.0.1:{args.port}\n"
            f"management_address=http://127.0.0.1:{free_port()}\n"
            f"metrics_address=http://127.0.0.1:{free_port()}\n"
            f"grpc_inference_address=127.0.0.1\ngrpc_inference_port={free_port()}\n"
            f"grpc_management_address=127.0.0.1\ngrpc_management_port={free_port()}\n"
            "default_workers_per_model=1\n"
        )
        subprocess.run(
            [
                str(bindir / "torch-model-archiver"),
                "--model-name=generator",
                "--version=1.0",
                f"--serialized-file={os.path.abspath(args.model)}",
                f"--handler={Path(__file__).resolve()}",
                f"--config-file={work / 'model-config.yaml'}",
                f"--export-path={store}",
            ],
            check=True,
            env=env,
            cwd=work,
        )
        stopping = []

        def stop(signum, frame):
            if not stopping:
                stopping.append(signum)
                subprocess.run([str(bindir / "torchserve"), "--stop", "--foreground"], env=env, check=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        process = subprocess.Popen(
            [
                str(bindir / "torchserve"),
                "--start",
                "--foreground",
                "--ncs",
                "--disable-token-auth",
                f"--model-store={store}",
                "--models=generator=generator.mar",
                f"--ts-config={work / 'config.properties'}",
            ],
            env=env,
            cwd=work,
        )
        while process.poll() is None:
            try:
                process.wait()
            except InterruptedError:
                continue
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
