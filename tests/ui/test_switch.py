"""GANSERVE_UI turns the playground's routes on (the default) and off; the modes it plots agree
with the datasets training defines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
MOUNTS = "from service.service import GanServe; print(sorted(path for _, path, _ in GanServe.mount_apps))"


def mounted(ui: str | None) -> str:
    env = {"PATH": "/usr/bin:/bin", "GANSERVE_MODELS_DIR": str(REPO / "models"), "BENTOML_DO_NOT_TRACK": "true"}
    if ui is not None:
        env["GANSERVE_UI"] = ui
    done = subprocess.run(
        [sys.executable, "-c", MOUNTS], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("ui, expected", [(None, "['/', '/ui']"), ("false", "['/']")])
def test_ganserve_ui_mounts_the_playground_or_not(ui, expected):
    assert mounted(ui) == expected


def test_the_plotted_modes_are_the_datasets_own():
    from service.http.ui.modes import DATA_MODES
    from training.data import toy

    for name in ("ring8", "grid25"):
        assert np.allclose(DATA_MODES[name]["modes"], toy.mixture_modes(name), atol=1e-12), name
        assert DATA_MODES[name]["sigma"] == toy.mixture_sigma(name)
    assert DATA_MODES["toy1d"] == {"modes": [[toy.TOY1D_MEAN]], "sigma": toy.TOY1D_STD}
