"""`python -m service serve`: run `bentoml serve service.service:GanServe` on the models directory.

Flags are shortcuts for the GANSERVE_* settings (service/settings.py); the environment holds the
rest. The models directory is made absolute here, so the server finds it from its own cwd.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.runtime import backends
from service.runtime.memory import ALLOCATOR_ENV
from service.settings import SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE = "service.service:GanServe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000)")
    parser.add_argument("--host", default="0.0.0.0", help="interface to bind (default 0.0.0.0: all)")
    parser.add_argument("--models-dir", type=Path, help="models directory (GANSERVE_MODELS_DIR, default models)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="GANSERVE_DEVICE (default auto)")
    parser.add_argument("--workers", type=int, help="worker processes (GANSERVE_WORKERS; default: one per core)")
    parser.add_argument(
        "--backend",
        choices=["auto", *backends.NAMES],
        help="GANSERVE_BACKEND: the CPU engine (default auto: the faster on this host)",
    )


def server_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The bentoml command line and its environment (testable without starting anything)."""
    env = dict(os.environ)
    if args.models_dir is not None:
        env["GANSERVE_MODELS_DIR"] = str(args.models_dir)
    if args.device is not None:
        env["GANSERVE_DEVICE"] = args.device
    if args.workers is not None:
        env["GANSERVE_WORKERS"] = str(args.workers)
    if getattr(args, "backend", None) is not None:
        env["GANSERVE_BACKEND"] = args.backend
    for key, value in ALLOCATOR_ENV.items():  # glibc's allocator settings (service/runtime/memory.py); the caller's win
        env.setdefault(key, value)
    models_dir = Path(env.get("GANSERVE_MODELS_DIR", "models"))
    env["GANSERVE_MODELS_DIR"] = str(models_dir.resolve())
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--working-dir",
        str(REPO_ROOT),
    ]
    return command, env


def run(args: argparse.Namespace) -> int:
    command, env = server_command(args)
    os.environ.update(env)
    try:
        settings = load_settings()  # fail here, in one line, rather than in every worker
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not settings.models_dir.is_dir():
        print(
            f"error: models directory {settings.models_dir} does not exist (set GANSERVE_MODELS_DIR "
            "or --models-dir; `python -m training export` writes models there)",
            file=sys.stderr,
        )
        return 2
    # BentoML restarts a worker whose start-up failed every few seconds, forever: check here, once,
    # that the models load (default model intact, device usable) and fail in one line if not.
    from service.runtime.engine import Engine, EngineError
    from service.runtime.providers import DeviceError

    try:
        # onnxruntime alone: this check is about loading, and auto would time every model twice.
        engine = Engine(
            settings.models_dir,
            settings.device,
            settings.default_model,
            intra_op_threads=1,
            backend=backends.DEFAULT if settings.backend == "auto" else settings.backend,
        )
    except (EngineError, DeviceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, reason in engine.unavailable.items():
        print(f"warning: model {name} is unavailable: {reason}", file=sys.stderr)
    print(
        f"serving {sorted(engine.models)} from {settings.models_dir} (default {engine.default_model}, "
        f"{engine.provider_note}) on http://{args.host}:{args.port}",
        flush=True,
    )
    del engine
    os.execvpe(command[0], command, env)  # the server replaces this process: signals reach it directly
