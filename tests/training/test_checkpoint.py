"""Checkpoints: safetensors + JSON only, round trips, pruning, and damaged files named in errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    join_optimizer,
    latest_checkpoint,
    load_checkpoint,
    load_run,
    split_optimizer,
)
from training.presets import resolve
from training.trainer import train

TINY = ["network.g_hidden=[16]", "network.d_hidden=[8]", "batch_size=16"]


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    # Two busy cores: torch's two threads spin against each other (100 ms vs 4 ms a step here).
    yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return train(resolve("mnist-paper", TINY), tmp_path_factory.mktemp("ckpt") / "run", max_steps=3, progress=False)


def test_checkpoint_holds_only_safetensors_and_json(run_dir):
    ckpt = latest_checkpoint(run_dir)
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "discriminator.safetensors",
        "generator.safetensors",
        "loop.safetensors",
        "optim_d.safetensors",
        "optim_g.safetensors",
        "state.json",
    ]
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 3 and state["config"]["preset"] == "mnist-paper"


def test_load_run_rebuilds_the_networks_in_eval_mode(run_dir):
    run = load_run(run_dir)
    assert run.config == resolve("mnist-paper", TINY)
    assert run.step == 3 and run.epoch == 0 and run.wall_time_s > 0 and run.run_dir == run_dir
    assert not run.generator.training and not run.discriminator.training
    z = torch.rand(4, 100)
    x = run.generator(z)
    assert x.shape == (4, 1, 28, 28) and run.discriminator(x).shape == (4, 1)
    # eval mode: dropout is off, so D is deterministic
    assert torch.equal(run.discriminator(x), run.discriminator(x))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5),
        lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999)),
    ],
)
def test_optimizer_state_round_trips_through_tensors_and_json(make):
    net = torch.nn.Linear(3, 2)
    opt = make(net.parameters())
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    tensors, meta = split_optimizer(opt.state_dict())
    rebuilt = join_optimizer(tensors, json.loads(json.dumps(meta)))
    fresh = make(net.parameters())
    fresh.load_state_dict(rebuilt)
    for a, b in zip(opt.state.values(), fresh.state.values()):
        for k in a:
            assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), k


def test_old_checkpoints_are_pruned(tmp_path):
    config = resolve(
        "digits", ["network.g_hidden=[8]", "network.d_hidden=[8]", "batch_size=700", "epochs=4", "keep_checkpoints=1"]
    )
    run = train(config, tmp_path / "run", progress=False)
    assert [p.name for p in checkpoint_dirs(run)] == ["step-00000004"]
    assert not list((run / "checkpoints").glob(".tmp-*"))


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / "copy"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda c: (c / "generator.safetensors").write_bytes(b"garbage"), "generator.safetensors: not a readable"),
        (lambda c: (c / "optim_d.safetensors").unlink(), "optim_d.safetensors: missing"),
        (lambda c: (c / "state.json").write_text("{"), "state.json: unreadable"),
        (lambda c: (c / "state.json").write_text(json.dumps({"format": 1})), "state.json: missing the key"),
    ],
)
def test_damaged_checkpoints_name_the_file(run_dir, tmp_path, damage, message):
    copy = _copy(run_dir, tmp_path)
    damage(latest_checkpoint(copy))
    with pytest.raises(CheckpointError, match=message):
        load_run(copy)


def test_weights_that_do_not_fit_the_config_are_named(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    state_path = latest_checkpoint(copy) / "state.json"
    state = json.loads(state_path.read_text())
    state["config"]["network"]["g_hidden"] = [17]
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="generator.safetensors: weights do not fit"):
        load_run(copy)
    state["config"]["network"]["g_hidden"] = "wide"
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="state.json: bad config.*network.g_hidden"):
        load_checkpoint(latest_checkpoint(copy))


def test_a_run_without_checkpoints_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        load_run(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(tmp_path)
