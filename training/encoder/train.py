"""Train E on (G(z), z) pairs from a model folder, G frozen, and measure it on pairs it never saw.

The pairs are drawn once (a pool; G's samples cost more than E's step for the larger models) and E
regresses the latent by mean squared error with Adam. Measured on 1,000 fresh pairs: the latent
error of E(G(z)) against z, and the reconstruction error of G(E(G(z))) against G(z), each beside a
scale that gives it meaning (the latent's variance; the error between two unrelated samples of G).
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
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.latent)
    c = torch.from_numpy(data.c) if data.c is not None else None
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


@torch.no_grad()
def encode(E: Encoder, x: np.ndarray, c) -> np.ndarray:
    return E(torch.from_numpy(x), None if c is None else torch.from_numpy(c)).numpy()


def measure(graphs: FolderGraphs, E: Encoder, held: Pairs, steps: int, pool: int) -> EncoderStats:
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
    )
