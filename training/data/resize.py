"""Bring square images to the size a network needs (DCGAN wants 32x32 or 64x64)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size).

    Growing by an even margin pads with the background (0), which keeps MNIST's strokes exact
    (28 -> 32, as LeNet did); anything else is an antialiased bilinear resize.
    """
    h = x.shape[-1]
    if size == h:
        return x
    if size > h and (size - h) % 2 == 0:
        m = (size - h) // 2
        return F.pad(x, (m, m, m, m))  # (N, C, size, size)
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp(0.0, 1.0)  # (N, C, size, size)
