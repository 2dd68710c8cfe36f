"""The peer servers (bench/peers/README.md): how to start each one, ask it for "n samples from a
seed", and read its answer. Runs in the project's venv; each peer runs in its own environment,
made by bench/peers/setup.sh, under ${GANSERVE_PEERS_HOME:-~/.cache/ganserve-peers}/<peer>.

    from catalog import PEERS, start_peer, stop_peer
    server = start_peer("litserve", Path("models/mnist/generator.onnx"), Path("/tmp/logs"))
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]  # bench/ and the repo

from servers import REPO, Server, ServerError, free_port, spawn, start_ganserve, wait_ready  # noqa: E402

PEERS_HOME = Path(os.environ.get("GANSERVE_PEERS_HOME") or Path.home() / ".cache" / "ganserve-peers")
STAMP = ".ganserve-peer"  # written by setup.sh last, once an env is complete


class PeerError(RuntimeError):
    """A peer cannot be started: its environment is missing, or it did not come up."""


# Answers ---------------------------------------------------------------------------------------

V2_DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32}


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def decode_npy(content: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """A .npy body (np.save)."""
    return np.load(io.BytesIO(content), allow_pickle=False)


def decode_v2_json(content: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """An Open Inference Protocol (V2) answer in JSON: the first output, `data` flat in row-major order."""
    answer = json.loads(content)
    output = answer["outputs"][0]
    return np.asarray(output["data"], dtype=V2_DTYPES[output["datatype"]]).reshape(output["shape"])


def decode_v2_binary(content: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """A V2 answer with the binary tensor extension: `Inference-Header-Content-Length` bytes of JSON,
    then each output's raw little-endian bytes in order (`parameters.binary_data_size` each). The
    first output. Falls back to JSON when the server sent no binary part."""
    length = _lower(headers).get("inference-header-content-length")
    if length is None:
        return decode_v2_json(content, headers)
    header = json.loads(content[: int(length)])
    output = header["outputs"][0]
    size = output["parameters"]["binary_data_size"]
    raw = content[int(length) : int(length) + size]
    return np.frombuffer(raw, dtype=np.dtype(V2_DTYPES[output["datatype"]]).newbyteorder("<")).reshape(output["shape"])


def decode_v2_json_one_row(content: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """MLServer's answer: V2 JSON of shape [1, n, ...] (one row per request, see mlserver_model.py)."""
    x = decode_v2_json(content, headers)
    if x.shape[0] != 1:
        raise ValueError(f"expected one row per request, got shape {list(x.shape)}")
    return x[0]


# Requests ---------------------------------------------------------------------------------------


def body_plain(n: int, seed: int, model: str) -> dict:
    return {"n": n, "seed": seed}


def body_ganserve(n: int, seed: int, model: str) -> dict:
    return {"model": model, "n": n, "seed": seed, "format": "npy"}


def body_v2(n: int, seed: int, model: str, binary: bool) -> dict:
    """A V2 inference request: scalars of shape [1, 1] (the dynamic batchers need a leading batch axis)."""
    body: dict = {
        "inputs": [
            {"name": "n", "shape": [1, 1], "datatype": "INT64", "data": [n]},
            {"name": "seed", "shape": [1, 1], "datatype": "UINT64", "data": [seed]},
        ]
    }
    if binary:
        body["parameters"] = {"binary_data_output": True}
    return body


# The peers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    name: str
    script: str | None  # the server file in bench/peers (None: ganserve itself)
    dist: str  # the distribution whose version names the peer
    ready_path: str  # GET answers 200 once the model is loaded
    path: str  # POST here with body(n, seed, model)
    body: Callable[[int, int, str], dict]
    decode: Callable[[bytes, Mapping[str, str]], np.ndarray]
    batching: str  # what the peer does for batching, in a few words
    answer: str  # the answer's format
    mixed_n: bool = True  # may requests asking for different n share a batch
    ready_timeout_s: float = 180

    @property
    def env(self) -> Path:
        return REPO / ".venv" if self.script is None else PEERS_HOME / self.name

    @property
    def installed(self) -> dict:
        """What setup.sh recorded (install.json): versions, install seconds, size; {} if missing."""
        if self.script is None:
            return {"version": _version("ganserve"), "onnxruntime": f"onnxruntime-gpu {_version('onnxruntime-gpu')}"}
        try:
            return json.loads((self.env / "install.json").read_text())
        except (OSError, ValueError):
            return {}

    @property
    def version(self) -> str:
        if self.script is None:
            return f"ganserve {_version('ganserve')} (bentoml {_version('bentoml')})"
        return f"{self.dist} {self.installed.get('version', '?')}"

    def ready(self) -> bool:
        return self.script is None or (self.env / STAMP).is_file()

    def command(self, model_path: Path, port: int, threads: int) -> list[str]:
        python, script = self.env / "bin" / "python", HERE / str(self.script)
        return [str(python), str(script), "--model", str(model_path), "--port", str(port), "--threads", str(threads)]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


PEERS: dict[str, Peer] = {
    p.name: p
    for p in [
        Peer(
            "ganserve",
            None,
            "ganserve",
            "/readyz",
            "/sample",
            body_ganserve,
            decode_npy,
            batching="its own micro-batcher (service/)",
            answer="npy",
        ),
        Peer(
            "fastapi",
            "fastapi_server.py",
            "fastapi",
            "/healthz",
            "/sample",
            body_plain,
            decode_npy,
            batching="none (one model run per request, in FastAPI's thread pool)",
            answer="npy",
        ),
        Peer(
            "litserve",
            "litserve_server.py",
            "litserve",
            "/health",
            "/sample",
            body_plain,
            decode_npy,
            batching="LitAPI max_batch_size=16, batch_timeout=0.002",
            answer="npy",
        ),
        Peer(
            "rayserve",
            "rayserve_server.py",
            "ray",
            "/sample",
            "/sample",
            body_plain,
            decode_npy,
            batching="@serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002), max_ongoing_requests=64",
            answer="npy",
        ),
        Peer(
            "pytriton",
            "pytriton_server.py",
            "nvidia-pytriton",
            "/v2/models/generator/ready",
            "/v2/models/generator/infer",
            lambda n, seed, model: body_v2(n, seed, model, binary=True),
            decode_v2_binary,
            batching="Triton dynamic batcher, max_batch_size=16, max_queue_delay 2000 us",
            answer="V2 binary",
        ),
        Peer(
            "kserve",
            "kserve_server.py",
            "kserve",
            "/v1/models/generator",
            "/v1/models/generator:predict",
            body_plain,
            decode_npy,
            batching="none (KServe's batcher is a Kubernetes sidecar, not in the model server)",
            answer="npy",
        ),
        Peer(
            "mlserver",
            "mlserver_model.py",
            "mlserver",
            "/v2/models/generator/ready",
            "/v2/models/generator/infer",
            lambda n, seed, model: body_v2(n, seed, model, binary=False),
            decode_v2_json_one_row,
            batching="adaptive batching max_batch_size=16, max_batch_time=0.002 (one n per batch)",
            answer="V2 JSON",
            mixed_n=False,
        ),
        Peer(
            "torchserve",
            "torchserve_server.py",
            "torchserve",
            "/ping",
            "/predictions/generator",
            body_plain,
            decode_npy,
            batching="batchSize=16, maxBatchDelay=2 ms",
            answer="npy",
        ),
    ]
}


def peer(name: str) -> Peer:
    try:
        return PEERS[name]
    except KeyError:
        raise PeerError(f"unknown peer {name!r}; known: {', '.join(PEERS)}") from None


# Starting and stopping ---------------------------------------------------------------------------


def _peer_env(p: Peer) -> dict[str, str]:
    """The caller's environment, less the project venv's traces, with the peer's env first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{p.env / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(p.env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_peer(name: str, model_path: Path, log_dir: Path, threads: int | None = None) -> Server:
    """Start one peer on a free port on 127.0.0.1, in a session of its own (so its whole process
    group can be killed), and wait until it answers its readiness path. `threads`: onnxruntime's
    intra-op threads (default: every core this process may use)."""
    p = peer(name)
    model_path = Path(model_path).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    if p.script is None:
        # ganserve serves a models folder: models/<name>/generator.onnx -> models/
        return start_ganserve(model_path.parent.parent, log_dir, extra_env={})
    if not p.ready():
        raise PeerError(f"{name}'s environment is missing or incomplete ({p.env}): run bench/peers/setup.sh {name}")
    port = free_port()
    threads = threads or len(os.sched_getaffinity(0))
    server = spawn(name, p.command(model_path, port, threads), _peer_env(p), port, log_dir)
    try:
        wait_ready(server, p.ready_path, p.ready_timeout_s)
    except ServerError:
        stop_peer(server)
        raise
    return server


def stop_peer(server: Server) -> list[str]:
    """Stop a server (SIGTERM, then its process group), then kill whatever of its processes is still
    running: Ray's actors sit in process groups of their own. Returns what had to be killed."""
    if server.process is None:
        return []
    before = server.processes()
    server.stop()
    left = []
    for proc in before:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline()[:2])}")
                proc.kill()
        except psutil.Error:
            continue
    try:
        os.killpg(server.process.pid, signal.SIGKILL)  # anything else left in its group
    except (ProcessLookupError, PermissionError):
        pass
    return left
