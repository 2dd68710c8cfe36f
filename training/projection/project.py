"""Optimise each image's latent so that G draws it: Adam on the latent through G in torch, from E's
guess (or, for a folder without an encoder, the best of a few hundred random latents).

The loss is the pixel error over the images' own variance plus, where a feature network applies
(training/encoder/real.py), the error in its 64-d features over their mean square: pixels alone
favour a blurred average, features alone let colours drift. Steps are bounded; the learning rate is
a share of the latent's spread and decays on a cosine; each image keeps the best latent it reached,
so projection never answers worse than where it started. A uniform z stays in its box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from training.encoder.real import feature_net
from training.folder_generator import FolderGenerator
from training.graph_torch import TorchGraph

RANDOM_STARTS = 256  # candidates per image when the folder has no encoder
CHUNK = 256  # images optimised together


@dataclass
class Projection:
    start: np.ndarray  # (n, dim) the starting latents (E's guess, or the best random one)
    latent: np.ndarray  # (n, dim) the projected latents
    start_x: np.ndarray  # G's samples of each
    x: np.ndarray
    pixel_start: np.ndarray  # (n,) mean squared pixel error per image
    pixel: np.ndarray
    feature_start: Optional[np.ndarray]  # (n,) mean squared feature error, where a feature net applies
    feature: Optional[np.ndarray]
    started_from: str  # "encoder" or "random"


class Projector:
    def __init__(self, folder: Path | str):
        self.G = FolderGenerator(folder)
        self.card = self.G.card
        self.E = TorchGraph(self.G.paths["encoder"]) if self.card.has_encoder else None
        _, clf, _ = feature_net(self.card)
        self.features = None
        if clf is not None:
            net = clf.net.eval().requires_grad_(False)
            lo, hi = self.card.sample.value_range
            # The classifier takes [0, 1]; G's samples are mapped there inside the graph of the loss.
            self.features = lambda x: net(((x - lo) / (hi - lo)).clamp(0.0, 1.0))[0]
        self.spread = self._latent_spread()

    def _latent_spread(self) -> float:
        lat = self.card.latent
        if self.card.style is None:
            return 1.0 if lat.distribution == "normal" else (lat.high - lat.low) / math.sqrt(12.0)
        z = torch.randn(1000, lat.dim, generator=torch.Generator().manual_seed(0))
        c = torch.zeros(1000, dtype=torch.int64) if self.card.condition is not None else None
        with torch.no_grad():
            return float(self.G.latent_of(z, c).std(0).mean())

    def _start(self, x: torch.Tensor, c: Optional[torch.Tensor], seed: int) -> torch.Tensor:
        with torch.no_grad():
            if self.E is not None:
                return self.G.clamp(self.E(x) if c is None else self.E(x, c))
            gen = torch.Generator().manual_seed(seed)
            best = []
            for i in range(len(x)):
                z = self._draw(RANDOM_STARTS, gen)
                ci = None if c is None else c[i : i + 1].expand(RANDOM_STARTS)
                err = ((self.G(z, ci) - x[i : i + 1]) ** 2).flatten(1).mean(1)
                best.append(z[int(err.argmin())])
            return torch.stack(best)

    def _draw(self, n: int, gen: torch.Generator) -> torch.Tensor:
        lat = self.card.latent
        if lat.distribution == "normal":
            z = torch.randn(n, lat.dim, generator=gen)
        else:
            z = torch.rand(n, lat.dim, generator=gen) * (lat.high - lat.low) + lat.low
        if self.card.style is None:
            return z
        c = torch.zeros(n, dtype=torch.int64) if self.card.condition is not None else None
        return self.G.latent_of(z, c)

    def _losses(self, g: torch.Tensor, x: torch.Tensor, target_feats, scales) -> tuple[torch.Tensor, ...]:
        pixel = ((g - x) ** 2).flatten(1).mean(1)
        if target_feats is None:
            return pixel, pixel / scales[0], None
        feat = ((self.features(g) - target_feats) ** 2).mean(1)
        return pixel, pixel / scales[0] + feat / scales[1], feat

    def project(
        self,
        x: np.ndarray,
        c: Optional[np.ndarray] = None,
        *,
        steps: int = 300,
        lr: float = 0.05,
        feature_weight: float = 1.0,
        seed: int = 0,
        progress: bool = True,
    ) -> Projection:
        parts = []
        chunks = range(0, len(x), CHUNK)
        bar = tqdm(total=steps * len(chunks), desc="project", unit="step", disable=not progress)
        for i in chunks:
            ci = None if c is None else torch.from_numpy(c[i : i + CHUNK])
            parts.append(
                self._project_chunk(torch.from_numpy(x[i : i + CHUNK]), ci, steps, lr, feature_weight, seed, bar)
            )
        bar.close()
        cat = {k: np.concatenate([p[k] for p in parts]) if parts[0][k] is not None else None for k in parts[0]}
        return Projection(**cat, started_from="encoder" if self.E is not None else "random")

    def _project_chunk(self, x, c, steps, lr, feature_weight, seed, bar) -> dict:
        target = None if self.features is None or feature_weight == 0 else self.features(x).detach()
        pixel_scale = float(x.var()) or 1.0
        scales = (pixel_scale, None if target is None else float((target**2).mean()) / feature_weight or 1.0)
        start = self._start(x, c, seed)
        latent = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([latent], lr=lr * self.spread)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        with torch.no_grad():
            pixel0, best_loss, feat0 = self._losses(self.G(start, c), x, target, scales)
        best = start.clone()
        for _ in range(steps):
            pixel, loss, _ = self._losses(self.G(latent, c), x, target, scales)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            with torch.no_grad():
                better = loss < best_loss
                best[better], best_loss = latent[better].detach(), torch.minimum(loss.detach(), best_loss)
            opt.step()
            schedule.step()
            with torch.no_grad():
                latent.copy_(self.G.clamp(latent))
            bar.update(1)
        with torch.no_grad():
            _, loss, _ = self._losses(self.G(latent, c), x, target, scales)  # after the last step
            best[loss < best_loss] = latent[loss < best_loss]
            out = self.G(best, c)
            pixel, _, feat = self._losses(out, x, target, scales)
            start_x = self.G(start, c)
        return {
            "start": start.numpy(),
            "latent": best.numpy(),
            "start_x": start_x.numpy(),
            "x": out.numpy(),
            "pixel_start": pixel0.numpy(),
            "pixel": pixel.numpy(),
            "feature_start": None if feat0 is None else feat0.numpy(),
            "feature": None if feat is None else feat.numpy(),
        }
