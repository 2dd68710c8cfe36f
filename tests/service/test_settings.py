"""Settings from the environment, and the `python -m service serve` command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from service.commands import serve
from service.settings import SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("GANSERVE_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_defaults(clean_env):
    s = load_settings()
    assert (s.models_dir, s.default_model, s.device, s.max_n, s.api_token, s.workers) == (
        Path("models"),
        "mnist",
        "auto",
        4096,
        None,
        None,
    )
    assert s.backend == "auto"
    assert (s.threads, s.micro_batching, s.access_log, s.tracing) == (16, True, True, False)


def test_values_come_from_ganserve_variables_and_the_token_stays_secret(clean_env):
    clean_env.setenv("GANSERVE_MAX_N", "10")
    clean_env.setenv("GANSERVE_DEVICE", "cuda")
    clean_env.setenv("GANSERVE_API_TOKEN", "s3cret")
    clean_env.setenv("GANSERVE_MICRO_BATCHING", "false")
    clean_env.setenv("GANSERVE_ACCESS_LOG", "false")
    clean_env.setenv("GANSERVE_TRACING", "true")
    s = load_settings()
    assert (
        s.max_n == 10
        and s.device == "cuda"
        and s.micro_batching is False
        and s.access_log is False
        and s.tracing is True
    )
    assert s.api_token.get_secret_value() == "s3cret" and "s3cret" not in repr(s)


@pytest.mark.parametrize("value, required", [(None, False), ("", False), ("s3cret", True)])
def test_an_empty_token_requires_none(clean_env, value, required):
    """The guard and /docs.json both go by token_required: `GANSERVE_API_TOKEN=` (empty) is no token."""
    if value is not None:
        clean_env.setenv("GANSERVE_API_TOKEN", value)
    assert load_settings().token_required is required


@pytest.mark.parametrize(
    "key, value",
    [
        ("GANSERVE_DEVICE", "gpu"),
        ("GANSERVE_MAX_N", "0"),
        ("GANSERVE_WORKERS", "two"),
        ("GANSERVE_MICRO_BATCHING", "maybe"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(clean_env, key, value):
    clean_env.setenv(key, value)
    with pytest.raises(SettingsError, match=key):
        load_settings()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_serve_runs_bentoml_on_the_service_with_an_absolute_models_dir(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    command, env = serve.server_command(_args("--port", "3123", "--host", "127.0.0.1", "--device", "cpu"))
    assert command[1:] == [
        "-m",
        "bentoml",
        "serve",
        "service.service:GanServe",
        "--host",
        "127.0.0.1",
        "--port",
        "3123",
        "--working-dir",
        str(serve.REPO_ROOT),
    ]
    assert env["GANSERVE_MODELS_DIR"] == str(tmp_path / "models") and env["GANSERVE_DEVICE"] == "cpu"


def test_serve_refuses_a_missing_models_dir_in_one_line(clean_env, tmp_path, capsys):
    assert serve.run(_args("--models-dir", str(tmp_path / "absent"))) == 2
    err = capsys.readouterr().err
    assert f"models directory {tmp_path / 'absent'} does not exist" in err


def test_serve_refuses_a_bad_setting_before_starting(clean_env, capsys):
    clean_env.setenv("GANSERVE_MAX_N", "-1")
    assert serve.run(_args()) == 2
    assert "GANSERVE_MAX_N" in capsys.readouterr().err


def test_serve_refuses_a_broken_default_model_before_starting(clean_env, tiny_model_copy, capsys):
    from tests.service.model_factory import corrupt

    folder = tiny_model_copy("tiny-digits")
    corrupt(folder)
    clean_env.setenv("GANSERVE_DEFAULT_MODEL", "tiny-digits")
    assert serve.run(_args("--models-dir", str(folder.parent), "--device", "cpu")) == 2
    err = capsys.readouterr().err
    assert "default model 'tiny-digits'" in err and "tiny-digits/generator.onnx" in err
