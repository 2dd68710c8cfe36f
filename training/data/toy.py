"""Toy densities with closed forms: a 1-D Gaussian (the paper's Figure 1) and two 2-D Gaussian
mixtures, `ring8` and `grid25` (the PacGAN / VEEGAN benchmarks).

Each split is sampled from its own fixed seed, so a split is the same array on every run and
machine, and the test split never overlaps the training one.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from training.data import DatasetInfo, Split

# Unit scale keeps the real-run test fast: Adam moves a bias by about lr per step.
TOY1D_MEAN = 1.0
TOY1D_STD = 1.0
SPLIT_SIZES = {"train": 20_000, "valid": 5_000, "test": 5_000}
# Independent seeds per split (numpy PCG64 is identical on every platform).
SPLIT_SEEDS = {"train": 1001, "valid": 1002, "test": 1003}
_MIXTURE_SIGMA = {"ring8": 0.01, "grid25": 0.05}


def toy1d_density(x: np.ndarray) -> np.ndarray:
    """The data's probability density at x (any shape)."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * ((x - TOY1D_MEAN) / TOY1D_STD) ** 2) / (TOY1D_STD * math.sqrt(2 * math.pi))


def toy1d_info() -> DatasetInfo:
    lo, hi = TOY1D_MEAN - 6 * TOY1D_STD, TOY1D_MEAN + 6 * TOY1D_STD
    return DatasetInfo("toy1d", (1,), "vector", (lo, hi), f"1-D Gaussian N({TOY1D_MEAN}, {TOY1D_STD}^2)")


def load_toy1d(split: str) -> Split:
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    x = rng.normal(TOY1D_MEAN, TOY1D_STD, size=(SPLIT_SIZES[split], 1))  # (N, 1)
    return Split(torch.from_numpy(x.astype(np.float32)), None)


def mixture_modes(name: str) -> np.ndarray:
    """The mixture's K component means, (K, 2)."""
    if name == "ring8":
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if name == "grid25":
        coords = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1).reshape(-1, 2)
    raise ValueError(f"not a mixture dataset: {name!r}")


def mixture_sigma(name: str) -> float:
    """Each component's standard deviation (isotropic)."""
    if name not in _MIXTURE_SIGMA:
        raise ValueError(f"not a mixture dataset: {name!r}")
    return _MIXTURE_SIGMA[name]


def mixture_info(name: str) -> DatasetInfo:
    bound = 1.5 if name == "ring8" else 5.0
    modes = mixture_modes(name)
    desc = f"{len(modes)} equal-weight 2-D Gaussians, sigma {mixture_sigma(name)}"
    # The label of a sample is the index of the component it was drawn from.
    return DatasetInfo(name, (2,), "vector", (-bound, bound), desc, tuple(f"mode{k}" for k in range(len(modes))))


def load_mixture(name: str, split: str) -> Split:
    """Samples with their component index as the label."""
    rng = np.random.default_rng(SPLIT_SEEDS[split] + (0 if name == "ring8" else 100))
    modes = mixture_modes(name)
    n = SPLIT_SIZES[split]
    k = rng.integers(0, len(modes), size=n)  # (N,)
    x = modes[k] + rng.normal(0.0, mixture_sigma(name), size=(n, 2))  # (N, 2)
    return Split(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(k.astype(np.int64)))
