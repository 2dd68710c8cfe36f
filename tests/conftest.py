"""Shared fixtures: a models directory with two tiny, really trained and exported models.

- `tiny-digits`: the MLP pair on scikit-learn's 8x8 digits, samples [1, 8, 8] in [0, 1].
- `tiny-ring`: a small MLP on `ring8`, 2-D vectors, linear output.

Both are trained for a handful of steps (the point is a real artifact, not a good model) and
exported by `training.export.export_run`, once per test session. torch and training are imported
inside the fixtures so test modules that never ask for them (the service's) stay torch-free.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

# Small enough to train and export in seconds on two busy cores; names are the fixture's API.
TINY_MODELS = {
    "tiny-digits": {
        "preset": "digits",
        "overrides": {
            "network.g_hidden": (32,),
            "network.d_hidden": (16,),
            "network.d_pieces": 2,
            "network.latent.dim": 8,
        },
        "description": "a tiny MLP GAN on 8x8 digits, trained a few steps (test fixture)",
    },
    "tiny-ring": {
        "preset": "ring8",
        "overrides": {
            "network.g_hidden": (32, 32),
            "network.d_hidden": (32,),
            "network.latent.dim": 4,
        },
        "description": "a tiny MLP GAN on 8 Gaussians in a ring, trained a few steps (test fixture)",
    },
}
TINY_STEPS = 20


def _export_untrained(name: str, spec: dict, models: Path) -> Path:
    # Interim, until training.trainer lands: the same shapes, exported from untrained networks.
    from training.export import export_model
    from training.networks import LatentConfig, NetworkConfig, build_discriminator, build_generator

    if name == "tiny-digits":
        cfg = NetworkConfig(sample_shape=(1, 8, 8), g_hidden=(32,), d_hidden=(16,), d_pieces=2, latent=LatentConfig(dim=8))
    else:
        cfg = NetworkConfig(sample_shape=(2,), output="linear", g_hidden=(32, 32), d_hidden=(32,), d_pieces=1,
                            latent=LatentConfig(dim=4, distribution="normal"), g_init_scale=None, d_init_scale=None)
    info = {"preset": spec["preset"], "config": {}, "steps": 0, "wall_time_s": 0.0, "seed": 0, "dataset": spec["preset"]}
    return export_model(cfg, build_generator(cfg), build_discriminator(cfg), name=name, out_dir=models,
                        training_info=info, description=spec["description"], progress=False)


def _train_and_export(name: str, spec: dict, runs: Path, models: Path) -> Path:
    try:
        from training.trainer import train
    except ImportError:
        return _export_untrained(name, spec, models)
    from training.config import resolve
    from training.export import export_run

    config = resolve(spec["preset"], spec["overrides"])
    run_dir = runs / name
    train(config, run_dir, max_steps=TINY_STEPS, progress=False)
    return export_run(run_dir, name=name, out_dir=models, description=spec["description"], progress=False)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding `tiny-digits` and `tiny-ring`. Read-only by convention:
    tests that modify a model folder take a copy with `tiny_model_copy`."""
    root = tmp_path_factory.mktemp("tiny")
    models = root / "models"
    for name, spec in TINY_MODELS.items():
        _train_and_export(name, spec, root / "runs", models)
    return models


@pytest.fixture
def tiny_model_copy(tiny_models_dir: Path, tmp_path: Path) -> Callable[[str], Path]:
    """A factory: `tiny_model_copy("tiny-digits")` copies that folder into a fresh models dir
    under this test's tmp_path and returns the copied model folder (free to tamper with)."""

    def copy(name: str = "tiny-digits") -> Path:
        dest = tmp_path / "models" / name
        shutil.copytree(tiny_models_dir / name, dest)
        return dest

    return copy
