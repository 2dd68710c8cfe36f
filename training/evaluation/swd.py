"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive
Growing of GANs", appendix D): an RGB metric that needs no pretrained network, so nothing is
downloaded.

Each image is split into a Laplacian pyramid (finest level first; the coarsest is the Gaussian
level itself, 16x16 as in the paper); from every level, `per_image` random 7x7 neighbourhoods
are taken as descriptors of 7 * 7 * C values, each colour channel normalised to zero mean and unit
variance over all descriptors of the set; the SWD between two sets is the mean absolute difference
of their sorted projections onto random unit directions (512 of them, 4 draws), reported x 1e3 as
in the paper. Lower is closer: per level, it says whether fine texture (the finest level) or coarse
structure (16x16) differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # the binomial filter of the Burt-Adelson pyramid
COARSEST = 16  # the paper's lowest resolution
NEIGHBOURHOOD = 7
DIRECTIONS = 512
REPEATS = 4
PER_IMAGE = 64  # the paper takes 128 from each of 16,384 images; fewer here, for 2 CPU cores
SCALE = 1e3


@dataclass(frozen=True)
class SWDResult:
    levels: dict[int, float]  # resolution -> SWD x 1e3
    n_images: int

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.levels.values())))


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 5-tap binomial blur of (N, C, H, W), reflecting at the borders."""
    pad = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    h, w = x.shape[2:]
    rows = sum(k * pad[:, :, i : i + h, :] for i, k in enumerate(KERNEL))  # (N, C, H, W + 4)
    return sum(k * rows[:, :, :, i : i + w] for i, k in enumerate(KERNEL))  # (N, C, H, W)


def upsample(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C, 2H, 2W): zeros between the samples, then the blur (x4 for their energy)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, 2 * h, 2 * w), x.dtype)
    out[:, :, ::2, ::2] = x
    return 4.0 * _blur(out)


def laplacian_pyramid(x: np.ndarray, coarsest: int = COARSEST) -> list[np.ndarray]:
    """(N, C, H, W) -> [finest band-pass level, ..., the Gaussian level at `coarsest`]."""
    levels, g = [], x.astype(np.float64)
    while g.shape[-1] > coarsest:
        down = _blur(g)[:, :, ::2, ::2]
        levels.append(g - upsample(down))
        g = down
    levels.append(g)
    return levels


def descriptors(level: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """Random 7x7 neighbourhoods of each image: (N * per_image, C * 49), channels normalised."""
    n, c, h, w = level.shape
    k = NEIGHBOURHOOD
    ys = rng.integers(0, h - k + 1, size=(n, per_image))
    xs = rng.integers(0, w - k + 1, size=(n, per_image))
    offsets = np.arange(k)
    rows = (ys[:, :, None] + offsets)[:, :, :, None]  # (n, per, k, 1)
    cols = (xs[:, :, None] + offsets)[:, :, None, :]  # (n, per, 1, k)
    img = np.arange(n)[:, None, None, None]
    patches = level.astype(np.float32).transpose(0, 2, 3, 1)[img, rows, cols]  # (n, per, k, k, C)
    d = patches.reshape(n * per_image, k * k, c)
    d = (d - d.mean(axis=(0, 1))) / (d.std(axis=(0, 1)) + 1e-8)  # each colour channel over the whole set
    return d.reshape(n * per_image, k * k * c).astype(np.float32)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """SWD between two equally sized sets of descriptors (M, D)."""
    out = []
    for _ in range(REPEATS):
        directions = rng.standard_normal((DIRECTIONS, a.shape[1])).astype(np.float32)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        # (DIRECTIONS, M): each projection a contiguous row, so the sorts run along memory.
        pa, pb = np.sort(directions @ a.T, axis=1), np.sort(directions @ b.T, axis=1)
        out.append(float(np.abs(pa - pb).mean()))
    return float(np.mean(out))


def swd(x: np.ndarray, reference: np.ndarray, seed: int = 0, per_image: int = PER_IMAGE) -> SWDResult:
    """SWD x 1e3 per pyramid level between images x and reference, both (N, C, H, W), same N."""
    if x.shape != reference.shape:
        raise ValueError(f"swd: the two sets must have the same shape, got {x.shape} and {reference.shape}")
    rng = np.random.default_rng(seed)
    levels = {}
    for lx, lr in zip(laplacian_pyramid(x), laplacian_pyramid(reference)):
        da, db = descriptors(lx, per_image, rng), descriptors(lr, per_image, rng)
        levels[lx.shape[-1]] = SCALE * sliced_wasserstein(da, db, rng)
    return SWDResult(levels, len(x))
