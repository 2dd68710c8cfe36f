"""The style-based G: mapping z [, c] -> w, synthesis ws (N, num_ws, w_dim) -> image.

- Mapping (Karras et al. 2019): z normalised to unit second moment (and, for a conditional G, the
  class's embedding normalised the same way beside it), then an MLP with a 100x lower learning
  rate. While training it tracks w_avg, the running mean of its outputs, which truncation in w
  pulls towards: w' = w_avg + psi (w - w_avg).
- Synthesis (Karras et al. 2020): a learned 4x4 constant, two modulated 3x3 convs per resolution
  (the first upsamples by resize + conv), and a skip output: each resolution adds its toRGB to the
  upsampled RGB of the last. Layer i takes ws[:, i]; toRGB of a resolution shares the w of the
  next conv, as in StyleGAN2, so num_ws = 2 * resolutions.
- Style mixing while training (Karras et al. 2019): with probability `style_mixing`, the layers
  from a random cutoff on take the w of a second z, so neighbouring layers do not learn to rely on
  each other and mixing at serving time draws sensible images.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from training.style.layers import EqualLinear, ModulatedConv


def normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, layers: int, classes: int = 0, w_avg_beta: float = 0.995):
        super().__init__()
        self.classes, self.w_avg_beta = classes, w_avg_beta
        self.embed = EqualLinear(classes, w_dim) if classes else None
        dims = [z_dim + (w_dim if classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=0.01, act=True) for a, b in zip(dims, dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))
        if classes:
            self.register_buffer("eye", torch.eye(classes), persistent=False)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = normalize_2nd_moment(z)  # (N, z_dim)
        if self.embed is not None:
            if c is None:
                raise ValueError("MappingNetwork: a conditional G needs the class c")
            x = torch.cat([x, normalize_2nd_moment(self.embed(self.eye[c]))], dim=1)  # (N, z_dim + w_dim)
        w = self.net(x)  # (N, w_dim)
        if self.training:
            with torch.no_grad():
                # in w_avg's own float32, whatever autocast computed w in (bf16 / fp16 runs)
                self.w_avg.copy_(w.detach().mean(dim=0).to(self.w_avg.dtype).lerp(self.w_avg, self.w_avg_beta))
        return w


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, size: int, channels: tuple[int, ...], out_channels: int = 3):
        super().__init__()
        self.resolutions = [4 * 2**i for i in range(int(math.log2(size // 4)) + 1)]  # 4, 8, .., size
        if len(channels) != len(self.resolutions):
            raise ValueError(
                f"style_channels: {len(self.resolutions)} values needed (4 .. {size}), got {len(channels)}"
            )
        self.const = nn.Parameter(torch.randn(channels[0], 4, 4))
        self.convs = nn.ModuleList()
        self.torgbs = nn.ModuleList()
        prev = channels[0]
        for i, (res, ch) in enumerate(zip(self.resolutions, channels)):
            if i > 0:
                self.convs.append(ModulatedConv(prev, ch, w_dim, 3, res, up=True))
            self.convs.append(ModulatedConv(ch, ch, w_dim, 3, res))
            self.torgbs.append(ModulatedConv(ch, out_channels, w_dim, 1, res, demodulate=False, noise=False, act=False))
            prev = ch
        self.num_ws = len(self.convs) + 1  # each conv its w; the last toRGB one more

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> RGB logits (N, C, size, size), before the output activation."""
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        rgb = None
        conv = iter(self.convs)
        layer = 0
        for i, torgb in enumerate(self.torgbs):
            for _ in range(1 if i == 0 else 2):
                x = next(conv)(x, ws[:, layer])
                layer += 1
            y = torgb(x, ws[:, layer])  # shares the w of the next resolution's first conv
            rgb = (
                y
                if rgb is None
                else nn.functional.interpolate(rgb, scale_factor=2.0, mode="bilinear", align_corners=False) + y
            )
        return rgb


class StyleGenerator(nn.Module):
    """G(z [, c]) = sigmoid(synthesis(broadcast(mapping(z [, c])))): images in [0, 1]."""

    def __init__(self, cfg):
        super().__init__()
        channels, size, _ = cfg.sample_shape
        self.mapping = MappingNetwork(cfg.latent.dim, cfg.w_dim, cfg.mapping_layers, cfg.classes)
        self.synthesis = SynthesisNetwork(cfg.w_dim, size, tuple(cfg.style_channels), channels)
        self.num_ws, self.w_dim = self.synthesis.num_ws, cfg.w_dim
        self.style_mixing = cfg.style_mixing

    def draw(self, ws: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.synthesis(ws))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        w = self.mapping(z, c)  # (N, w_dim)
        ws = w[:, None].repeat(1, self.num_ws, 1)  # (N, num_ws, w_dim)
        if self.training and self.style_mixing > 0:
            ws = self._mix(ws, z, c)
        return self.draw(ws)

    def _mix(self, ws: torch.Tensor, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        n = ws.shape[0]
        mix = torch.rand(n, device=ws.device) < self.style_mixing  # (N,) which samples mix
        cutoff = torch.randint(1, self.num_ws, (n,), device=ws.device)  # (N,) first layer of the second w
        w2 = self.mapping(torch.randn_like(z), c)  # (N, w_dim)
        later = torch.arange(self.num_ws, device=ws.device)[None] >= cutoff[:, None]  # (N, num_ws)
        take = (later & mix[:, None])[:, :, None]
        return torch.where(take, w2[:, None], ws)
