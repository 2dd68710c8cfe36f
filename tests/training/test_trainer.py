"""Algorithm 1 on real (tiny) data: every dataset trains, resuming is exact, divergence stops the
run, and a short real run on toy1d learns the data's distribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.training.test_data import write_pngs, write_tiny_mnist
from training.checkpoint import latest_checkpoint, load_run
from training.data import load_dataset
from training.networks import sample_latent
from training.presets import resolve
from training.trainer import Context, Hooks, TrainingError, default_hooks, init_g_bias_from_data, train

# Tiny networks per preset: the point is that every dataset flows through the whole loop.
TINY_MLP = ["network.g_hidden=[16]", "network.d_hidden=[8]"]
TINY_DCGAN = ["network.g_width=4", "network.d_width=4", "batch_size=8"]


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    # Two busy cores: torch's two threads spin against each other (100 ms vs 4 ms a step here).
    yield


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def tiny_cases(tmp_path: Path) -> dict[str, list[str]]:
    mnist = write_tiny_mnist(tmp_path / "mnist", n_train=60)
    imgs = write_pngs(tmp_path / "imgs", n=20, size=40)
    return {
        "toy1d": ["epochs=1"] + TINY_MLP,
        "ring8": ["epochs=1"] + TINY_MLP,
        "grid25": ["epochs=1"] + TINY_MLP,
        "digits": ["batch_size=16"] + TINY_MLP,
        "mnist-paper": ["batch_size=16"] + TINY_MLP,
        "mnist": ["dataset=mnist", f"dataset_options.path={mnist}", "batch_size=10"] + TINY_MLP,
        "dcgan-mnist": TINY_DCGAN,
        "folder": [f"dataset_options.path={imgs}"] + TINY_DCGAN,
    }


def test_every_dataset_trains_a_few_steps(tmp_path):
    for case, overrides in tiny_cases(tmp_path).items():
        preset = "mnist-paper" if case == "mnist" else case
        run = train(resolve(preset, overrides), tmp_path / case, max_steps=6, progress=False)
        rows = metrics(run)
        assert rows, case
        for row in rows:
            for key in ("d_real", "d_fake", "loss_d", "loss_g"):
                assert np.isfinite(row[key]), (case, key)
            assert 0.0 < row["d_real"] < 1.0 and 0.0 < row["d_fake"] < 1.0
        assert rows[-1]["step"] == 6, case
        assert list((run / "grids").glob("*.png")), case
        assert json.loads((run / "config.json").read_text())["preset"] == preset
        loaded = load_run(run)
        assert loaded.step == 6 and not loaded.generator.training
        assert loaded.config == resolve(preset, overrides)


def test_epochs_write_metrics_grids_and_checkpoints(tmp_path):
    # digits' 1,397 training images at batch 700: one step is one epoch (the remainder is dropped).
    config = resolve("digits", TINY_MLP + ["batch_size=700", "epochs=3", "keep_checkpoints=2"])
    run = train(config, tmp_path / "run", progress=False)
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and not any(r["partial"] for r in rows)
    assert sorted(p.name for p in (run / "grids").iterdir()) == [f"epoch-000{i}.png" for i in (1, 2, 3)]
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-00000002", "step-00000003"]
    # Finished: running again does no more steps.
    train(config, run, progress=False)
    assert load_run(run).step == 3 and len(metrics(run)) == 3


def test_k_discriminator_steps_per_generator_step(tmp_path):
    # 1,397 digits at batch 100 are 13 D minibatches an epoch; with k = 3 that is 13/3 steps.
    config = resolve("digits", TINY_MLP + ["batch_size=100", "d_steps=3", "epochs=2"])
    run = train(config, tmp_path / "run", progress=False)
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["step"] in (8, 9, 10)  # 26 D updates, wrapping mid-step counts once per pass


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("mnist-paper", ["batch_size=16"] + TINY_MLP),  # SGD, momentum ramp, lr decay, dropout
        ("ring8", TINY_MLP + ["batch_size=64"]),  # Adam
        ("mnist", ["batch_size=16"] + TINY_MLP),  # Adam, R1 penalty, G's weight average
    ],
)
def test_resume_is_bit_for_bit(tmp_path, preset, overrides):
    config = resolve(preset, overrides + ["epochs=100"])
    straight = train(config, tmp_path / "straight", max_steps=40, progress=False)
    half = train(config, tmp_path / "resumed", max_steps=20, progress=False)
    train(config, half, max_steps=40, progress=False)
    a, b = latest_checkpoint(straight), latest_checkpoint(half)
    assert a.name == b.name == "step-00000040"
    files = ["generator", "discriminator", "optim_d", "optim_g"]
    if config.g_ema_decay > 0:
        files.append("generator_ema")
    for f in files:
        wa, wb = load_file(a / f"{f}.safetensors"), load_file(b / f"{f}.safetensors")
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (f, k)


def test_resume_refuses_a_different_config(tmp_path):
    run = train(resolve("toy1d", TINY_MLP), tmp_path / "run", max_steps=2, progress=False)
    with pytest.raises(TrainingError, match="seed"):
        train(resolve("toy1d", TINY_MLP + ["seed=5"]), run, max_steps=4, progress=False)


def test_divergence_stops_the_run_with_a_clear_error(tmp_path):
    def poison(ctx: Context) -> None:
        with torch.no_grad():
            next(ctx.generator.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"step 1, epoch 1: d_loss is nan; .*; no checkpoint was written"):
        train(resolve("toy1d", TINY_MLP), tmp_path / "run", max_steps=5, progress=False, hooks=Hooks([poison]))
    assert latest_checkpoint(tmp_path / "run") is None  # nothing half-done saved as if it were good


def test_g_bias_hook_starts_g_at_the_pixel_means(tmp_path):
    config = resolve("mnist-paper", TINY_MLP)
    assert config.g_bias_from_data and init_g_bias_from_data in default_hooks().on_start
    from training.networks import build_discriminator, build_generator

    g, d = build_generator(config.network), build_discriminator(config.network)
    data = load_dataset("mnist5k", "train").x
    init_g_bias_from_data(Context(config, g, d, data, tmp_path, torch.device("cpu")))
    with torch.no_grad():
        g.out.weight.zero_()  # isolate the bias: G's output is then sigmoid(bias)
        out = g(torch.zeros(1, config.network.latent.dim))[0]
    mean = data.mean(dim=0)
    assert torch.allclose(out, mean.clamp(1e-3, 1 - 1e-3), atol=1e-5)


def test_real_run_learns_toy1d(tmp_path):
    """The paper's Figure 1 setting: after a short run, G's samples match the data (KS < 0.05)."""
    from scipy.stats import ks_2samp

    config = resolve("toy1d")  # the preset as users run it (1,560 steps, seconds)
    run = load_run(train(config, tmp_path / "run", progress=False))
    with torch.no_grad():
        z = sample_latent(config.network.latent, 5000, torch.Generator().manual_seed(123))
        samples = run.generator(z).numpy().ravel()  # (5000,)
    data = load_dataset("toy1d", "test").x.numpy().ravel()
    assert ks_2samp(samples, data).statistic < 0.05


def test_weight_average_is_what_the_run_ships(tmp_path):
    config = resolve("mnist", ["batch_size=16"] + TINY_MLP + ["g_ema_decay=0.9"])
    run = train(config, tmp_path / "run", max_steps=10, progress=False)
    ckpt = latest_checkpoint(run)
    raw, avg = load_file(ckpt / "generator.safetensors"), load_file(ckpt / "generator_ema.safetensors")
    assert raw.keys() == avg.keys()
    assert any(not torch.equal(raw[k], avg[k]) for k in raw)  # the average lags the raw weights
    shipped = load_run(run).generator.state_dict()
    assert all(torch.equal(shipped[k], avg[k]) for k in avg)
