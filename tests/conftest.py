"""Shared fixtures: a models directory with two tiny, really trained and exported models.

- `tiny-digits`: the MLP pair on scikit-learn's 8x8 digits, samples [1, 8, 8] in [0, 1].
- `tiny-ring`: a small MLP on `ring8`, 2-D vectors, linear output.

Both are trained for a handful of steps (the point is a real artifact, not a good model) and
exported by `training.export.export_run`, once per test session. torch and training are imported
inside the fixtures so test modules that never ask for them (the service's) stay torch-free.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import hypothesis
import pytest

# prometheus_client chooses its value store when first imported: multiprocess files only if this is
# set by then. The in-process app's /metrics reads those files (as under `bentoml serve`), so it is
# set here, before any test module can import prometheus_client (tests/deploy parses /metrics).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="ganserve-prometheus-"))

# Hypothesis: a fixed, derandomized profile by default (CI and `make test`: the same cases every
# run, within the suite's time budget), and a longer random search with HYPOTHESIS_PROFILE=dev.
# Tests that set their own max_examples (the schema fuzz) keep them.
hypothesis.settings.register_profile("ci", max_examples=100, derandomize=True, database=None, deadline=None)
hypothesis.settings.register_profile("dev", max_examples=1000, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Small enough to train and export in seconds on two busy cores; names are the fixture's API.
TINY_MODELS = {
    "tiny-digits": {
        "preset": "digits",
        "overrides": ["network.g_hidden=[32]", "network.d_hidden=[16]", "network.d_pieces=2", "network.latent.dim=8"],
        "description": "a tiny MLP GAN on 8x8 digits, trained a few steps (test fixture)",
    },
    "tiny-ring": {
        "preset": "ring8",
        "overrides": ["network.g_hidden=[32,32]", "network.d_hidden=[32]", "network.latent.dim=4"],
        "description": "a tiny MLP GAN on 8 Gaussians in a ring, trained a few steps (test fixture)",
    },
}
TINY_STEPS = 20


def _train_and_export(name: str, spec: dict, runs: Path, models: Path) -> Path:
    from training.export import export_run
    from training.presets import resolve
    from training.trainer import train

    config = resolve(spec["preset"], spec["overrides"])
    run_dir = runs / name
    train(config, run_dir, max_steps=TINY_STEPS, progress=False)
    return export_run(run_dir, name=name, out_dir=models, description=spec["description"], progress=False)


@contextlib.contextmanager
def single_threaded_torch():
    """Tiny networks run one thread: on two busy cores, torch's default of one thread per core
    made a 32-unit MLP step ~500x slower (measured: 190 ms vs 0.4 ms) from threads fighting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def torch_single_thread():
    """For test modules that run torch themselves (see `single_threaded_torch`)."""
    with single_threaded_torch():
        yield


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding `tiny-digits` and `tiny-ring`. Read-only by convention:
    tests that modify a model folder take a copy with `tiny_model_copy`. The training runs
    stay beside it, in `tiny_models_dir.parent / "runs" / <name>`."""
    root = tmp_path_factory.mktemp("tiny")
    models = root / "models"
    with single_threaded_torch():
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
