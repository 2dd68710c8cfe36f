"""Where the toy datasets' data lies, for the page's plots of vector samples: the component means
(and spread) of the 2-D Gaussian mixtures and the 1-D Gaussian, by the card's `dataset` name.

The service may not import `training` (where these datasets are defined: training/data/toy.py),
so the numbers are repeated here; tests/ui/test_modes.py checks they agree with training's.
"""

from __future__ import annotations

import math


def _ring8() -> list[list[float]]:
    return [[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)]


def _grid25() -> list[list[float]]:
    coords = [-4.0, -2.0, 0.0, 2.0, 4.0]
    return [[a, b] for a in coords for b in coords]


# dataset name -> {"modes": K points of the sample's dimension, "sigma": each mode's std}
DATA_MODES: dict[str, dict] = {
    "ring8": {"modes": _ring8(), "sigma": 0.01},
    "grid25": {"modes": _grid25(), "sigma": 0.05},
    "toy1d": {"modes": [[1.0]], "sigma": 1.0},
}
