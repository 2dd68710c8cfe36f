"""Train E on (G(z), z) pairs from a model folder, G frozen, then on real images through G, and
measure it on pairs and images it never saw.

The pairs are drawn once (a pool; G's samples cost more than E's step for the larger models) and E
regresses the latent by mean squared error with Adam. Measured on 1,000 fresh pairs: the latent
error of E(G(z)) against z, and the reconstruction error of G(E(G(z))) against G(z), each beside a
scale that gives it meaning (the latent's variance; the error between two unrelated samples of G).

Pairs alone teach E only G's own samples; a real image is never exactly one of them. So a second
phase (`tune_on_real`) adds the reconstruction error of real training images, G(E(x)) against x,
with G run in torch from the folder's ONNX graphs (training/folder_generator.py) so the gradient
reaches E. The pair loss stays in every step, each term divided by its scale, so E keeps
predicting latents G was trained on instead of drifting to any latent that draws the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from training.encoder.networks import Encoder
from training.encoder.pairs import FolderGraphs, Pairs

HELD_OUT = 1000


@dataclass
class EncoderStats:
    latent_mse: float  # mean over coordinates of (E(G(z)) - z)^2 on held-out pairs
    latent_variance: float  # the latent's own variance per coordinate: what predicting the mean scores
    reconstruction_mse: float  # mean over values of (G(E(G(z))) - G(z))^2
    unrelated_mse: float  # the same between G(z) and G(z') of unrelated latents: the scale
    steps: int
    pool: int
    space: str  # "z" or "w"
    real_steps: int = 0  # minibatches on real images through G after the pairs (tune_on_real)


def train_encoder(
    graphs: FolderGraphs,
    *,
    steps: int = 3000,
    batch: int = 128,
    pool: int = 20_000,
    seed: int = 0,
    lr: float = 1e-3,
    progress: bool = True,
) -> tuple[Encoder, EncoderStats, Pairs]:
    """E trained on `pool` pairs for `steps` minibatches; returns E (eval mode), its stats and the
    held-out pairs (for export's parity check)."""
    torch.manual_seed(seed)
    card = graphs.card
    data = graphs.pairs(pool, seed)
    classes = card.condition.classes if card.condition else 0
    E = Encoder(tuple(card.sample.shape), graphs.latent_dim, classes)
    x, y, c = _tensors(data)
    opt = torch.optim.Adam(E.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed + 1)
    E.train()
    for _ in tqdm(range(steps), desc="encoder", unit="step", disable=not progress):
        idx = torch.randint(len(x), (batch,), generator=order)
        loss = torch.nn.functional.mse_loss(E(x[idx], None if c is None else c[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    E.eval()
    held = graphs.pairs(HELD_OUT, seed + 10_000)
    stats = measure(graphs, E, held, steps, pool)
    return E, stats, held


def _tensors(data: Pairs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return torch.from_numpy(data.x), torch.from_numpy(data.latent), None if data.c is None else torch.from_numpy(data.c)


def tune_on_real(
    E: Encoder,
    graphs: FolderGraphs,
    G,
    real,
    *,
    steps: int,
    batch: int = 64,
    pool: int = 20_000,
    seed: int = 0,
    lr: float = 3e-4,
    progress: bool = True,
) -> Encoder:
    """E after `steps` minibatches of pair loss + real-image reconstruction loss (G frozen, in torch)."""
    torch.manual_seed(seed + 2)
    data = graphs.pairs(pool, seed)
    latent_scale = float(np.mean(data.latent.var(axis=0))) or 1.0
    pixel_scale = float(np.mean((data.x - np.roll(data.x, 1, axis=0)) ** 2)) or 1.0
    px, py, pc = _tensors(data)
    rx = torch.from_numpy(real.x)
    rc = torch.from_numpy(real.c) if real.c is not None else None
    opt = torch.optim.Adam(E.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed + 3)
    E.train()
    for _ in tqdm(range(steps), desc="encoder on real images", unit="step", disable=not progress):
        i = torch.randint(len(px), (batch,), generator=order)
        j = torch.randint(len(rx), (batch,), generator=order)
        pair = torch.nn.functional.mse_loss(E(px[i], None if pc is None else pc[i]), py[i])
        cj = None if rc is None else rc[j]
        back = G(G.clamp(E(rx[j], cj)), cj)
        recon = torch.nn.functional.mse_loss(back, rx[j])
        loss = pair / latent_scale + recon / pixel_scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    E.eval()
    return E


@torch.no_grad()
def encode(E: Encoder, x: np.ndarray, c) -> np.ndarray:
    return E(torch.from_numpy(x), None if c is None else torch.from_numpy(c)).numpy()


def measure(graphs: FolderGraphs, E: Encoder, held: Pairs, steps: int, pool: int, real_steps: int = 0) -> EncoderStats:
    guess = encode(E, held.x, held.c)
    back = graphs.draw_from_latent(guess.astype(np.float32), held.c)
    unrelated = float(np.mean((held.x - np.roll(held.x, 1, axis=0)) ** 2))
    return EncoderStats(
        latent_mse=float(np.mean((guess - held.latent) ** 2)),
        latent_variance=float(np.mean(held.latent.var(axis=0))),
        reconstruction_mse=float(np.mean((back - held.x) ** 2)),
        unrelated_mse=unrelated,
        steps=steps,
        pool=pool,
        space="w" if graphs.card.style is not None else "z",
        real_steps=real_steps,
    )


def reconstruct(graphs: FolderGraphs, E: Encoder, x: np.ndarray, c) -> np.ndarray:
    """G(E(x)) through the folder's ONNX graphs, E's latent clipped to the box for uniform z (as
    POST /invert does)."""
    guess = encode(E, x, c).astype(np.float32)
    lat = graphs.card.latent
    if graphs.card.style is None and lat.distribution == "uniform":
        guess = np.clip(guess, lat.low, lat.high).astype(np.float32)
    return graphs.draw_from_latent(guess, c)
