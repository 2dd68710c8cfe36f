"""`python -m training train`: presets, overrides, dry run, and errors that name the key (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.__main__ import main
from training.config import TrainConfig
from training.presets import PRESETS, resolve

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_dry_run_prints_the_resolved_config(preset, capsys):
    extra = ["--set", "dataset_options.path=/somewhere"] if preset == "folder" else []
    assert main(["train", "--preset", preset, "--dry-run", *extra]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert TrainConfig.from_dict(printed) == resolve(preset, extra[1:])


def test_overrides_are_typed_and_nested(capsys):
    args = [
        "train",
        "--preset",
        "mnist-paper",
        "--dry-run",
        "--set",
        "seed=7",
        "--set",
        "d_optim.lr=0.05",
        "--set",
        "network.g_hidden=64,32",
        "--set",
        "g_loss=minimax",
        "--set",
        "network.latent.distribution=normal",
    ]
    assert main(args) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["seed"] == 7 and cfg["d_optim"]["lr"] == 0.05 and cfg["g_optim"]["lr"] == 0.1
    assert cfg["network"]["g_hidden"] == [64, 32] and cfg["g_loss"] == "minimax"
    assert cfg["network"]["latent"]["distribution"] == "normal"


@pytest.mark.parametrize(
    "override, message",
    [
        ("sed=1", "sed: unknown key"),
        ("d_optim.learning_rate=1", "d_optim.learning_rate: unknown key"),
        ("seed=abc", "seed: expected an integer"),
        ("batch_size=2.5", "batch_size: expected an integer"),
        ("d_optim.kind=rmsprop", "d_optim.kind: 'rmsprop' is not one of"),
        ("network.g_hidden=wide", "network.g_hidden: expected a list"),
        ("d_steps=0", "d_steps: must be >= 1"),
        ("dataset_options.colour=red", "dataset_options.colour: unknown option"),
        ("network.output=tanh", "network.output"),
        ("seed", "an override is key=value"),
    ],
)
def test_bad_overrides_exit_2_naming_the_key(override, message, capsys):
    assert main(["train", "--preset", "mnist-paper", "--dry-run", "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_data_exits_2_naming_the_directory(tmp_path, capsys):
    args = [
        "train",
        "--preset",
        "mnist-paper",
        "--out",
        str(tmp_path / "run"),
        "--set",
        "dataset=mnist",
        "--set",
        f"dataset_options.path={tmp_path / 'no-mnist'}",
    ]
    assert main(args) == 2
    assert "no-mnist: not a directory" in capsys.readouterr().err


def test_a_short_run_writes_its_outputs(tmp_path, capsys):
    before = torch.get_num_threads()
    out = tmp_path / "run"
    try:
        rc = main(
            [
                "train",
                "--preset",
                "ring8",
                "--out",
                str(out),
                "--max-steps",
                "3",
                "--quiet",
                "--threads",
                "1",
                "--set",
                "network.g_hidden=[8]",
                "--set",
                "network.d_hidden=[8]",
            ]
        )
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    assert json.loads((out / "config.json").read_text())["network"]["g_hidden"] == [8]
    assert (out / "metrics.jsonl").read_text().count("\n") == 1
    assert (out / "checkpoints" / "step-00000003" / "state.json").is_file()


def test_the_real_command_line_reports_errors_without_a_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "training", "train", "--preset", "toy1d", "--dry-run", "--set", "epochs=many"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "epochs: expected an integer" in proc.stderr and "Traceback" not in proc.stderr
