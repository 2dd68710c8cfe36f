"""Differentiable augmentation for small data sets (Zhao et al. 2020, "DiffAugment"): the same
random colour, translation and cutout applied to every image D sees, real or fake, inside the graph
G's gradient flows through. D cannot memorise 3,000 images it never sees twice the same, and since
fakes are augmented the same way, G is not taught to draw the augmentations.

`xflip` is different: it mirrors real images only (a data set twice as large), as Karras et al.
(2020, "ADA") do with --mirror; G learns both orientations. All randomness comes from torch's global
generator, which the trainer's checkpoints save, so a resumed run augments the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("color", "translation", "cutout", "xflip")


def parse(spec: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); an unknown kind is a ValueError naming it."""
    kinds = tuple(k.strip() for k in spec.split(",") if k.strip())
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"{k!r} is not one of {', '.join(KINDS)}")
    return kinds


def color(x: torch.Tensor) -> torch.Tensor:
    """Brightness +-0.5, saturation x0..2, contrast x0.5..1.5, per image; x in [0, 1] (N, C, H, W)."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio x its side in each direction (one gather); uncovered pixels
    are white, the background of the emoji and of most icon-like data."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy = (torch.arange(h, device=x.device)[None, :, None] + dy).expand(n, h, w) + 1  # (N, H, W), +1 for the pad
    gx = (torch.arange(w, device=x.device)[None, None, :] + dx).expand(n, h, w) + 1
    padded = F.pad(x, (1, 1, 1, 1), value=1.0)  # a white border the shift reads beyond the edges
    gy, gx = gy.clamp(0, h + 1), gx.clamp(0, w + 1)
    flat = padded.flatten(2)  # (N, C, (H + 2) (W + 2))
    index = (gy * (w + 2) + gx).flatten(1)[:, None].expand(-1, x.shape[1], -1)
    return flat.gather(2, index).view_as(x)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero out one square of ratio x the side per image, at a random place."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy).abs() <= ch // 2) & ((xs - cx).abs() <= cw // 2)  # (N, H, W)
    return x * (~inside)[:, None].to(x.dtype)


def diff_augment(x: torch.Tensor, kinds: tuple[str, ...]) -> torch.Tensor:
    """The differentiable kinds, in DiffAugment's order; what D sees of every image."""
    for name, fn in (("color", color), ("translation", translation), ("cutout", cutout)):
        if name in kinds:
            x = fn(x)
    return x


def augment_reals(x: torch.Tensor, kinds: tuple[str, ...]) -> torch.Tensor:
    """Mirror half the real images left-right, where `xflip` is asked for."""
    if "xflip" not in kinds:
        return x
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
