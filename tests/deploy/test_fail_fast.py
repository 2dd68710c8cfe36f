"""Fail fast: under plain `bentoml serve` (what the image and compose run), a default model that
cannot load stops the server with a non-zero exit and the reason in its log, instead of BentoML
restarting the worker forever behind a /readyz that never answers (service/http/failfast.py)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from service.http.failfast import EXIT_STARTUP_FAILED
from tests.servers import Server, server_env

pytestmark = pytest.mark.slow
EXIT_WITHIN_S = 90  # bentoml's start on two busy cores, one failed worker start, the stop


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_bentoml_serve_exits_when_the_default_model_cannot_load(tiny_models_dir: Path, tmp_path: Path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    _flip_a_byte(models / "tiny-digits" / "generator.onnx")
    env = server_env(
        {
            "GANSERVE_MODELS_DIR": str(models),
            "GANSERVE_DEFAULT_MODEL": "tiny-digits",
            "GANSERVE_DEVICE": "cpu",
            "BENTOML_HOME": str(tmp_path / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
    )
    server = Server("tampered", env, tmp_path / "server.log", command="bentoml")
    try:
        started = time.monotonic()
        try:
            server.proc.wait(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"bentoml serve still running {EXIT_WITHIN_S} s after start with a tampered default "
                f"model:\n{server.log_tail()}"
            )
        took = time.monotonic() - started
        log = server.log.read_text(errors="replace")
        assert server.returncode == EXIT_STARTUP_FAILED, log[-3000:]
        assert "cannot start: EngineError: default model 'tiny-digits'" in log
        assert "sha256 does not match the card" in log
        # One failed start, not a loop of them: the worker was not started again and again.
        assert log.count("Application startup failed") <= 2, log[-3000:]
        assert not [p for p in server.tree() if p.is_running()], "processes left behind"
        print(f"exited {server.returncode} after {took:.1f} s")
    finally:
        server.stop()


def test_a_broken_model_that_is_not_the_default_does_not_stop_the_server(tiny_models_dir: Path, tmp_path: Path):
    """Only the default model is fatal: another broken folder is listed as unavailable (engine.py)."""
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    _flip_a_byte(models / "tiny-ring" / "generator.onnx")
    env = server_env(
        {
            "GANSERVE_MODELS_DIR": str(models),
            "GANSERVE_DEFAULT_MODEL": "tiny-digits",
            "GANSERVE_DEVICE": "cpu",
            "BENTOML_HOME": str(tmp_path / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
    )
    server = Server("one-broken", env, tmp_path / "server.log", command="bentoml")
    try:
        server.wait_ready()
        assert server.alive()
    finally:
        server.stop()
    assert "cannot start" not in server.log.read_text(errors="replace")
