"""Pictures of samples for people: a tiled PNG grid of images, or a plot of vectors (a histogram
for 1-D data, a scatter for 2-D), optionally over real data for comparison."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np


def tile_images(
    images: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0), ncol: Optional[int] = None, pad: int = 1
) -> np.ndarray:
    """(N, C, H, W) -> one uint8 picture (rows*(H+pad)+pad, cols*(W+pad)+pad, C), C in 1 or 3."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images: expected (N, 1 or 3, H, W), got {images.shape}")
    n, c, h, w = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = max(1, math.ceil(n / ncol))
    lo, hi = value_range
    x = np.clip((np.asarray(images, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    x = (x * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 64, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = x[i]
    return out


def save_image_grid(
    images: np.ndarray, path: Path | str, value_range=(0.0, 1.0), scale: int = 0, ncol: Optional[int] = None
) -> Path:
    """Write a PNG grid; tiny images (8x8 digits) are scaled up so a person can see them."""
    from PIL import Image

    tile = tile_images(images, value_range, ncol)
    scale = scale or max(1, 256 // max(tile.shape[:2]))
    im = Image.fromarray(tile[..., 0] if tile.shape[2] == 1 else tile)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    im.save(path)
    return path


def save_vector_plot(
    samples: np.ndarray,
    path: Path | str,
    reference: Optional[np.ndarray] = None,
    title: str = "",
    labels: Optional[np.ndarray] = None,
) -> Path:
    """(N, 1): histograms of samples and reference; (N, 2): a scatter; (N, d>2): the first two dims."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    samples = np.asarray(samples).reshape(len(samples), -1)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    if samples.shape[1] == 1:
        bins = 60
        if reference is not None:
            ax.hist(np.asarray(reference).ravel(), bins=bins, density=True, alpha=0.5, label="data")
        ax.hist(samples.ravel(), bins=bins, density=True, alpha=0.5, label="G(z)")
        ax.legend()
    else:
        if reference is not None:
            ref = np.asarray(reference).reshape(len(reference), -1)
            ax.scatter(ref[:, 0], ref[:, 1], s=2, alpha=0.3, label="data")
        if labels is None:
            ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.6, label="G(z)")
        else:  # a conditional G: one colour per class
            ax.scatter(
                samples[:, 0], samples[:, 1], s=2, alpha=0.6, c=np.asarray(labels) % 20, cmap="tab20", label="G(z, c)"
            )
        ax.set_aspect("equal")
        ax.legend(loc="upper right")
    ax.set_title(title)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_grid(
    samples: np.ndarray,
    path: Path | str,
    value_range=(0.0, 1.0),
    reference: Optional[np.ndarray] = None,
    title: str = "",
    ncol: Optional[int] = None,
    labels: Optional[np.ndarray] = None,
) -> Path:
    """Images (N, C, H, W) as a tiled grid (`ncol` per row), vectors (N, d) as a plot (coloured by `labels`)."""
    samples = np.asarray(samples)
    if samples.ndim == 4:
        return save_image_grid(samples, path, value_range, ncol=ncol)
    return save_vector_plot(samples, path, reference, title, labels)
