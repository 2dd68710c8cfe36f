"""The SWD metric on Laplacian-pyramid patches: its pyramid, and that it ranks what it should."""

from __future__ import annotations

import numpy as np

from training.evaluation.swd import laplacian_pyramid, swd, upsample


def _textures(n: int, seed: int, freq: float) -> np.ndarray:
    """Smooth random colour stripes of one spatial frequency, (n, 3, 32, 32) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    angle, phase = rng.uniform(0, np.pi, (2, n, 1, 1, 1))
    colour = rng.uniform(0.2, 0.8, (n, 3, 1, 1))
    wave = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase * 6)[:, 0]  # (n, 32, 32)
    return np.clip(colour + 0.2 * wave[:, None], 0, 1).astype(np.float32)


def test_the_pyramid_reconstructs_the_image() -> None:
    x = _textures(4, 0, 0.8)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [32, 16]
    np.testing.assert_allclose(levels[0] + upsample(levels[1]), x, atol=1e-6)


def test_swd_is_small_for_the_same_distribution_and_grows_with_the_difference() -> None:
    real = _textures(120, 0, 0.8)
    same = swd(_textures(120, 1, 0.8), real).mean
    other = swd(_textures(120, 1, 2.5), real).mean  # finer stripes: a different texture
    noise = swd(np.random.default_rng(2).uniform(0, 1, real.shape).astype(np.float32), real).mean
    assert same < other < noise
    assert same < 0.5 * other
