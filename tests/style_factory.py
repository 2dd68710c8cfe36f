"""A style-based generator written here, not by our trainer: the way another codebase (StyleGAN's,
say) would hand one over, as mapping.onnx, synthesis.onnx and w_avg.npy, then packed with
`python -m service pack --mapping --synthesis --w-avg`.

It differs from training/style on purpose: AdaIN-like per-channel scale and shift instead of
modulated convolutions, nearest upsampling, tanh output in [-1, 1], a conditional mapping with a
one-hot class, and an MLP D. Its weights come from `seed`, so a test can rebuild the same torch
modules and compare the served answers with torch's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Z_DIM, W_DIM, NUM_WS, CLASSES, SIDE = 8, 16, 3, 3, 8
CLASS_NAMES = ("circle", "square", "cross")


class ForeignMapping(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(Z_DIM + CLASSES, W_DIM), nn.Linear(W_DIM, W_DIM)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-6) * Z_DIM**0.5
        h = torch.cat([z, F.one_hot(c, CLASSES).to(z.dtype)], dim=1)
        return self.fc2(F.leaky_relu(self.fc1(h), 0.2))  # (N, W_DIM)


class ForeignSynthesis(nn.Module):
    """ws (N, 3, W_DIM): layer 0 styles the 4x4 features, layer 1 the 8x8 ones, layer 2 the RGB."""

    def __init__(self):
        super().__init__()
        self.const = nn.Parameter(torch.randn(8, 4, 4))
        self.style = nn.ModuleList([nn.Linear(W_DIM, 16) for _ in range(NUM_WS)])  # scale and shift of 8 channels
        self.conv0, self.conv1 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.rgb = nn.Conv2d(8, 3, 1)

    def _adain(self, x: torch.Tensor, w: torch.Tensor, i: int) -> torch.Tensor:
        scale, shift = self.style[i](w).chunk(2, dim=1)  # (N, 8) each
        x = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-5)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = F.leaky_relu(self.conv0(self._adain(x, ws[:, 0], 0)), 0.2)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.leaky_relu(self.conv1(self._adain(x, ws[:, 1], 1)), 0.2)
        return torch.tanh(self.rgb(self._adain(x, ws[:, 2], 2)))  # (N, 3, 8, 8) in [-1, 1]


class ForeignDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3 * SIDE * SIDE + CLASSES, 32), nn.Linear(32, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), F.one_hot(c, CLASSES).to(x.dtype)], dim=1)
        return self.fc2(F.leaky_relu(self.fc1(h), 0.2))  # (N, 1) logits


def build(seed: int = 0) -> tuple[nn.Module, nn.Module, nn.Module, np.ndarray]:
    """(mapping, synthesis, D, w_avg) in eval mode; the same for the same seed."""
    torch.manual_seed(seed)
    mapping, synthesis, d = ForeignMapping().eval(), ForeignSynthesis().eval(), ForeignDiscriminator().eval()
    with torch.no_grad():
        z = torch.randn(4096, Z_DIM, generator=torch.Generator().manual_seed(seed + 1))
        w_avg = mapping(z, torch.arange(4096) % CLASSES).mean(dim=0).numpy().astype(np.float32)
    return mapping, synthesis, d, w_avg


def export_graphs(out: Path, seed: int = 0) -> dict[str, Path]:
    """mapping.onnx, synthesis.onnx, D.onnx and w_avg.npy under `out`, as another codebase hands them over."""
    from training.onnx_io import export_inputs, save_graph

    mapping, synthesis, d, w_avg = build(seed)
    out.mkdir(parents=True, exist_ok=True)
    z, c = torch.randn(2, Z_DIM), torch.tensor([0, 1])
    with torch.no_grad():
        ws = mapping(z, c)[:, None].repeat(1, NUM_WS, 1)
        x = synthesis(ws)
    paths = {
        "mapping": out / "foreign_mapping.onnx",
        "synthesis": out / "foreign_synthesis.onnx",
        "discriminator": out / "foreign_d.onnx",
        "w_avg": out / "foreign_w_avg.npy",
    }
    save_graph(export_inputs(mapping, {"z": z, "c": c}, "w"), paths["mapping"])
    save_graph(export_inputs(synthesis, {"ws": ws}, "img"), paths["synthesis"])
    save_graph(export_inputs(d, {"img": x, "c": c}, "logit"), paths["discriminator"])
    np.save(paths["w_avg"], w_avg, allow_pickle=False)
    return paths


def pack_into(models: Path, name: str, graphs_dir: Path, seed: int = 0) -> Path:
    """The foreign network exported and packed into `models/name` by the pack command's own code."""
    from service.packing.declare import Declarations
    from service.packing.pack import Graphs, pack

    p = export_graphs(graphs_dir, seed)
    decl = Declarations(name=name, dataset="synthetic", value_range=(-1.0, 1.0), classes=CLASS_NAMES)
    graphs = Graphs(discriminator=p["discriminator"], mapping=p["mapping"], synthesis=p["synthesis"], w_avg=p["w_avg"])
    return pack(graphs, decl, models, realness_samples=64, say=lambda line: None)
