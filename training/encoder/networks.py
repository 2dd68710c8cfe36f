"""E's networks: a strided conv stack for images, an MLP for vectors; a conditional model's class
joins the features one-hot before the dense layers (the class is given, as G was given it)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


class Encoder(nn.Module):
    """x (N, *sample_shape) [, c (N,) int64] -> latent (N, out_dim)."""

    def __init__(self, sample_shape: tuple[int, ...], out_dim: int, classes: int = 0, width: int = 256):
        super().__init__()
        self.classes = classes
        image = len(sample_shape) == 3 and sample_shape[1] >= 8 and sample_shape[1] == sample_shape[2]
        if image:
            channels, side = sample_shape[0], sample_shape[1]
            layers, c = [], channels
            for out in (32, 64, 128)[: max(1, int(math.log2(side // 4)))]:  # down to 4x4 (or 7x7 for 28)
                layers += [nn.Conv2d(c, out, 4, 2, 1), nn.LeakyReLU(0.2)]
                c, side = out, side // 2
            self.features = nn.Sequential(*layers, nn.Flatten())
            flat = c * side * side
        else:
            self.features = nn.Flatten()
            flat = math.prod(sample_shape)
        self.head = nn.Sequential(
            nn.Linear(flat + classes, width),
            nn.LeakyReLU(0.2),
            nn.Linear(width, width),
            nn.LeakyReLU(0.2),
            nn.Linear(width, out_dim),
        )
        if classes:
            self.register_buffer("eye", torch.eye(classes), persistent=False)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.features(x)
        if self.classes:
            if c is None:
                raise ValueError("Encoder: a conditional model's encoder needs the class c")
            h = torch.cat([h, self.eye[c]], dim=1)
        return self.head(h)
