"""The residual D of StyleGAN2 (Karras et al. 2020), sized for small data: fromRGB at full
resolution, residual blocks that halve it down to 4x4, minibatch standard deviation, a 3x3 conv
and two dense layers. Conditional: a projection head (Miyato & Koyama 2018), logit = psi(h) +
<embed(c), h>. Images come in [0, 1] and are moved to [-1, 1] first.

Minibatch standard deviation makes D's logit of a sample depend on the other samples of its batch;
a served realness must not (micro-batching would change a sample's score). So D keeps a running
mean of that feature while it trains, and in eval mode (what export ships) every sample gets that
constant in place of its group's value: one logit per sample, whatever the batch.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from training.style.layers import EqualConv, EqualLinear, minibatch_std


class ResidualBlock(nn.Module):
    def __init__(self, inp: int, out: int):
        super().__init__()
        self.conv0 = EqualConv(inp, inp, 3)
        self.conv1 = EqualConv(inp, out, 3)
        self.skip = EqualConv(inp, out, 1, bias=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(self.conv1(self.conv0(x)), 2)
        return (y + F.avg_pool2d(self.skip(x), 2)) / math.sqrt(2.0)  # keeps the variance of the sum


class ResidualDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        channels, size, _ = cfg.sample_shape
        widths = tuple(reversed(cfg.style_d_channels))  # size .. 4
        if len(widths) != int(math.log2(size // 4)) + 1:
            raise ValueError(f"style_d_channels: one width per resolution 4 .. {size}")
        self.fromrgb = EqualConv(channels, widths[0], 1)
        self.blocks = nn.Sequential(*[ResidualBlock(a, b) for a, b in zip(widths, widths[1:])])
        last = widths[-1]
        self.mbstd_group = cfg.mbstd_group
        self.register_buffer("mbstd_avg", torch.zeros(()))  # the running mean of the minibatch-std feature
        self.conv = EqualConv(last + 1, last, 3)
        self.fc = EqualLinear(last * 16, last, act=True)
        self.out = EqualLinear(last, 1)
        self.embed = EqualLinear(cfg.classes, last) if cfg.classes else None
        if cfg.classes:
            self.register_buffer("eye", torch.eye(cfg.classes), persistent=False)

    def platt_layers(self) -> tuple[EqualLinear, Optional[EqualLinear]]:
        """Where calibration folds a Platt fit a * logit + b (training/served_d.py): the logit is
        out(h) + <embed(c), h> / sqrt(last), so `out` takes a and b, the embedding a."""
        return self.out, self.embed

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.blocks(self.fromrgb(x * 2.0 - 1.0))  # (N, last, 4, 4)
        if self.training:
            h = minibatch_std(h, self.mbstd_group)
            with torch.no_grad():
                self.mbstd_avg.lerp_(h[:, -1].mean().to(self.mbstd_avg.dtype), 0.01)  # float32 under autocast too
        else:
            h = torch.cat([h, self.mbstd_avg.expand(h.shape[0], 1, *h.shape[2:])], dim=1)
        h = self.conv(h)
        h = self.fc(h.flatten(1))  # (N, last)
        logit = self.out(h)  # (N, 1)
        if self.embed is not None:
            if c is None:
                raise ValueError("ResidualDiscriminator: a conditional D needs the class c")
            e = self.embed(self.eye[c])  # (N, last)
            logit = logit + (e * h).sum(dim=1, keepdim=True) / math.sqrt(h.shape[1])
        return logit
