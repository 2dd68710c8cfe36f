"""A model folder's sampling graphs as one differentiable torch generator: latent -> sample.

The latent is what E predicts and what projection optimises: z for a single-graph model, w for a
style-based one (broadcast to every layer, as FolderGraphs.draw_from_latent does through
onnxruntime). Any folder works, packed ones included, as long as training/graph_torch/ runs its
operators; gradients reach the latent, never the frozen weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from models.card import load_model_folder
from training.graph_torch import TorchGraph


class FolderGenerator(nn.Module):
    def __init__(self, folder: Path | str):
        super().__init__()
        self.card, self.paths = load_model_folder(folder)  # role -> verified file
        self.graphs = nn.ModuleDict({role: TorchGraph(self.paths[role]) for role in self.card.sampling_roles})
        self.requires_grad_(False)
        self.eval()

    @property
    def latent_dim(self) -> int:
        return self.card.style.w_dim if self.card.style is not None else self.card.latent.dim

    def latent_of(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z itself, or the mapping's w for a style-based model."""
        if self.card.style is None:
            return z
        return self.graphs["mapping"](*self._inputs(self.card.onnx.mapping, z, c))

    def forward(self, latent: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, latent_dim) [, c (N,)] -> samples (N, *sample_shape) in the card's value range."""
        if self.card.style is not None:
            ws = latent[:, None].expand(-1, self.card.style.num_ws, -1)
            return self.graphs["synthesis"](ws)
        z = latent.reshape(len(latent), *self.card.latent.graph_shape)
        return self.graphs["generator"](*self._inputs(self.card.onnx.generator, z, c))

    def _inputs(self, signature, first: torch.Tensor, c: Optional[torch.Tensor]) -> tuple:
        if len(signature.inputs) > 1:
            if c is None:
                raise ValueError(f"{self.card.name}: a conditional model needs the class c")
            return first, c
        return (first,)

    def clamp(self, latent: torch.Tensor) -> torch.Tensor:
        """The latent kept where G was trained: inside the box for uniform z (no-op otherwise)."""
        lat = self.card.latent
        if self.card.style is None and lat.distribution == "uniform":
            return latent.clamp(lat.low, lat.high)
        return latent
