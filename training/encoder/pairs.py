"""(sample, latent) pairs drawn from a model folder's own graphs through onnxruntime: z from the
card's distribution, classes uniform, x = G(z [, c]); for a style-based model the latent is
w = mapping(z [, c]) and x = synthesis(w on every layer). Any folder works, packed ones included:
E needs no gradient of G, only its samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from models.card import load_model_folder
from training.onnx_io import cpu_session

CHUNK = 500


@dataclass
class Pairs:
    x: np.ndarray  # (n, *sample_shape) float32
    latent: np.ndarray  # (n, dim): z, or w for a style-based model
    c: Optional[np.ndarray]  # (n,) int64 for a conditional model


class FolderGraphs:
    def __init__(self, folder: Path | str, threads: int = 0):
        self.card, self.paths = load_model_folder(folder)
        self.sessions = {role: cpu_session(self.paths[role], threads) for role in self.card.sampling_roles}
        # E's two phases draw the same pool, with the held-out pairs between: the last two are kept.
        self._recent: dict[tuple[int, int], Pairs] = {}

    @property
    def latent_dim(self) -> int:
        return self.card.style.w_dim if self.card.style is not None else self.card.latent.dim

    def draw_z(self, rng: np.random.Generator, n: int) -> np.ndarray:
        lat = self.card.latent
        if lat.distribution == "normal":
            return rng.standard_normal((n, lat.dim)).astype(np.float32)
        return rng.uniform(lat.low, lat.high, size=(n, lat.dim)).astype(np.float32)

    def _feeds(self, sig, first: np.ndarray, c: Optional[np.ndarray]) -> dict:
        feeds = {sig.inputs[0].name: first}
        if c is not None and len(sig.inputs) > 1:
            feeds[self.card.condition.input] = c
        return feeds

    def latent_of(self, z: np.ndarray, c: Optional[np.ndarray]) -> np.ndarray:
        """What E learns to predict for z: z itself, or the mapping's w."""
        if self.card.style is None:
            return z
        return self.sessions["mapping"].run(None, self._feeds(self.card.onnx.mapping, z, c))[0]

    def draw_from_latent(self, latent: np.ndarray, c: Optional[np.ndarray]) -> np.ndarray:
        """G's sample of each latent (z, or w broadcast to every layer), in chunks."""
        out = []
        for i in range(0, len(latent), CHUNK):
            part, ci = latent[i : i + CHUNK], None if c is None else c[i : i + CHUNK]
            if self.card.style is not None:
                ws = np.ascontiguousarray(np.repeat(part[:, None], self.card.style.num_ws, axis=1))
                out.append(self.sessions["synthesis"].run(None, {self.card.onnx.synthesis.inputs[0].name: ws})[0])
            else:
                z = part.reshape(len(part), *self.card.latent.graph_shape)
                out.append(self.sessions["generator"].run(None, self._feeds(self.card.onnx.generator, z, ci))[0])
        return np.concatenate(out)

    def pairs(self, n: int, seed: int) -> Pairs:
        """n pairs from `seed` (the same every time: the last two draws are kept and handed out again)."""
        key = (n, seed)
        if key not in self._recent:
            self._recent = {k: v for k, v in list(self._recent.items())[-1:]} | {key: self._draw_pairs(n, seed)}
        return self._recent[key]

    def _draw_pairs(self, n: int, seed: int) -> Pairs:
        rng = np.random.default_rng(seed)
        z = self.draw_z(rng, n)
        c = rng.integers(0, self.card.condition.classes, n).astype(np.int64) if self.card.condition else None
        latent = np.concatenate(
            [self.latent_of(z[i : i + CHUNK], None if c is None else c[i : i + CHUNK]) for i in range(0, n, CHUNK)]
        )
        return Pairs(self.draw_from_latent(latent, c), latent.astype(np.float32), c)
