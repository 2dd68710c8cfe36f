"""`samples.png`: a picture of what a model generates, for people (the service never reads it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

GRID = 8  # 8 x 8 = 64 samples
MIN_CELL_PX = 64  # small images (8x8 digits) are upscaled so a person can see them


def image_grid(x: np.ndarray, value_range: tuple[float, float], path: Path) -> None:
    """Tile up to 64 images (N, C, H, W) into an 8 x 8 grid PNG, values mapped from value_range."""
    x = x[: GRID * GRID]
    n, c, h, w = x.shape
    lo, hi = value_range
    pixels = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    pixels = (pixels * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)
    gap = 1
    canvas = np.full((GRID * (h + gap) + gap, GRID * (w + gap) + gap, c), 128, dtype=np.uint8)
    for i in range(n):
        row, col = divmod(i, GRID)
        top, left = gap + row * (h + gap), gap + col * (w + gap)
        canvas[top : top + h, left : left + w] = pixels[i]
    image = Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode="L" if c == 1 else "RGB")
    scale = max(1, MIN_CELL_PX // max(h, w))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.save(path, format="PNG")


def vector_plot(x: np.ndarray, path: Path) -> None:
    """A histogram for 1-D samples, a scatter of the first two coordinates otherwise."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    if x.shape[1] == 1:
        ax.hist(x[:, 0], bins=100, color="tab:blue")
        ax.set_xlabel("x")
    else:
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, color="tab:blue")
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{len(x)} samples of G")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def write_preview(x: np.ndarray, kind: str, value_range: tuple[float, float], path: Path) -> None:
    if kind == "image":
        image_grid(x, value_range, path)
    else:
        vector_plot(x.reshape(len(x), -1), path)
