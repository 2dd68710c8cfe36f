"""The layers style-based networks are built from, written for export: every op is a plain ONNX op
(no grouped convolutions that depend on the batch, no custom kernels).

- Equalized learning rate (Karras et al. 2018): weights are drawn N(0, 1) and scaled by
  1/sqrt(fan_in) at run time, so Adam's per-parameter step is the same for every layer.
- Modulated convolution (Karras et al. 2020, "StyleGAN2"), in its non-fused form: scale the input
  channels by the style, convolve with the shared weight, and scale the output channels by the
  demodulation coefficients. The same maths as the per-sample weights of the paper, one batched conv.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) with StyleGAN's gain sqrt(2), which keeps the activations' scale per layer."""
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    def __init__(self, inp: int, out: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, inp) / lr_mul)
        self.bias = nn.Parameter(torch.full((out,), float(bias_init)))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(inp), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(y) if self.act else y


class EqualConv(nn.Module):
    """A plain convolution with an equalized learning rate, bias and LeakyReLU (D's layers)."""

    def __init__(self, inp: int, out: int, kernel: int, bias: bool = True, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, inp, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None
        self.scale, self.pad, self.act = 1.0 / math.sqrt(inp * kernel * kernel), kernel // 2, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        return lrelu(y) if self.act else y


class ModulatedConv(nn.Module):
    """x (N, in, H, W), w (N, w_dim) -> (N, out, H', W'): the style layer of StyleGAN2.

    `up` doubles H and W first by bilinear resizing (resize, then convolve: no transposed
    convolution, so no checkerboard). `noise` adds per-pixel noise scaled by a learned strength:
    fresh noise while training, the layer's fixed noise buffer otherwise ("const" noise), so in
    eval mode the image is a function of w alone.
    """

    def __init__(
        self,
        inp: int,
        out: int,
        w_dim: int,
        kernel: int,
        size: int,
        demodulate: bool = True,
        up: bool = False,
        noise: bool = True,
        act: bool = True,
    ):
        super().__init__()
        self.affine = EqualLinear(w_dim, inp, bias_init=1.0)  # styles start at 1: plain conv at init
        self.weight = nn.Parameter(torch.randn(out, inp, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out))
        self.scale, self.pad = 1.0 / math.sqrt(inp * kernel * kernel), kernel // 2
        self.demodulate, self.up, self.act = demodulate, up, act
        if noise:
            self.noise_strength = nn.Parameter(torch.zeros(()))
            self.register_buffer("noise_const", torch.randn(1, 1, size, size))
        else:
            self.noise_strength = None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        styles = self.affine(w)  # (N, in)
        weight = self.weight * self.scale  # (out, in, k, k)
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.pad)  # (N, out, H, W)
        if self.demodulate:
            # 1 / ||w'||: the norm of each output channel's weights after modulation by this sample's styles.
            d = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8)  # (N, out)
            x = x * d[:, :, None, None]
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn_like(x[:, :1]) if self.training else self.noise_const
            x = x + noise * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return lrelu(x) if self.act else x


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one channel: the mean standard deviation of the features across groups of `group`
    samples (Karras et al. 2018), so D can see a lack of variety in a batch of fakes."""
    n, c, h, w = x.shape
    g = min(group, n)
    if n % g:
        g = 1
    y = x.reshape(g, n // g, c, h, w)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (N / g,)
    y = y.repeat(g)[:, None, None, None].expand(n, 1, h, w)  # each sample gets its group's value
    return torch.cat([x, y], dim=1)
