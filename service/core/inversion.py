"""POST /invert's work: images to the latents E guesses for them (z, or w for a style-based
model), G's reconstructions of those latents, the error of each, and optionally a bounded search
that improves on E.

The search (`refine` k) needs no gradient, so it runs on onnxruntime: k candidates per image, in
rounds of up to ROUND, each drawn around the image's best latent so far, all candidates of a round
drawn by G in one batch; a candidate replaces the best when its error is lower. A round's
candidates step at every scale from LARGEST_STEP down to SMALLEST_STEP (log-spaced), since how far
E's guess is from the optimum is not known: near it only the small steps help, far from it the
large ones. The steps are in units of the latent's spread (1 for N(0, 1) and for the paper's
U(-sqrt 3, sqrt 3); for w, the standard deviation of E's guess for that image, at least 0.1).
Its draws come from the request's seed, so a request gives the same answer every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from service.core import formats, latents, requests
from service.runtime import admission, cancellation
from service.runtime.model import LoadedModel

ROUND = 16
# At most this many candidates go through G at once: images are searched in chunks of
# MAX_BATCH // ROUND, so a request's peak memory stays that of a /sample of MAX_BATCH, whatever n.
MAX_BATCH = 4096
LARGEST_STEP = 0.5
SMALLEST_STEP = 0.002


@dataclass
class Inverted:
    latents: np.ndarray  # (n, dim): z or w
    reconstructions: np.ndarray  # (n, *sample_shape)
    errors: np.ndarray  # (n,) mean squared error per value, against the image
    errors_of_e: np.ndarray  # (n,) the same for E's guess alone (equal to errors without refine)
    candidates: int  # drawn by the search, per image


def charge(model: LoadedModel, n: int, fmt: str, refine: int) -> int:
    """Admission's charge of inverting n images, beside decoding the body (charged apart, as a
    /score of it): the answer (reconstructions as a /sample of n in `fmt`, and latents) and the
    search's largest round, min(n, MAX_BATCH // ROUND) images x min(refine, ROUND) candidates."""
    card = model.card
    rows = min(n, MAX_BATCH // ROUND) * min(refine, ROUND)
    dim = card.style.w_dim if model.is_style else card.latent.dim
    # A json answer carries the latents beside the reconstructions, encoded like them.
    latents_answered = n * dim * formats.get(fmt).peak_bytes_per_value if fmt == "json" else 0
    return requests.charge(card, n, fmt) + latents_answered + admission.search_cost(rows, dim, card.sample.size)


def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)


def _clipped(model: LoadedModel, z: np.ndarray) -> np.ndarray:
    """A uniform latent stays inside its bounds (G never saw z outside them)."""
    lat = model.card.latent
    if model.is_style or lat.distribution != "uniform":
        return z
    return np.clip(z, lat.low, lat.high).astype(np.float32)


def invert(model: LoadedModel, x: np.ndarray, c: Optional[np.ndarray], refine: int = 0, seed: int = 0) -> Inverted:
    """E's guess of each image, and the search's improvement on it where `refine` asks for one."""
    if not refine:
        return _invert(model, x, c, 0, seed)
    step = max(1, MAX_BATCH // ROUND)
    parts = [
        _invert(
            model, x[i : i + step], None if c is None else c[i : i + step], refine, (seed + i) % (latents.MAX_SEED + 1)
        )
        for i in range(0, len(x), step)
    ]
    return Inverted(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("latents", "reconstructions", "errors", "errors_of_e")
        ),
        refine,
    )


def _invert(model: LoadedModel, x: np.ndarray, c: Optional[np.ndarray], refine: int, seed: int) -> Inverted:
    guess = _clipped(model, model.encode(x, c))
    recon = model.draw_latent(guess, c)
    err = mse(recon, x)
    best, best_x, best_err = guess.copy(), recon.copy(), err.copy()
    if refine:
        rng = latents.generator(seed, stream=4)
        # Per image, so a chunk's answer does not depend on the other images in it.
        spread = np.maximum(guess.std(axis=1), 0.1)[:, None, None] if model.is_style else 1.0
        left, n = refine, len(x)
        while left:
            cancellation.check()  # a departed client's search stops here (runtime/cancellation.py)
            k = min(ROUND, left)
            steps = spread * np.geomspace(LARGEST_STEP, SMALLEST_STEP, k)[None, :, None]  # (n or 1, k, 1)
            cand = best[:, None] + steps * rng.standard_normal((n, k, best.shape[1]))  # (n, k, dim)
            cand = _clipped(model, cand.reshape(n * k, -1).astype(np.float32))
            cc = None if c is None else np.repeat(c, k)
            drawn = model.draw_latent(cand, cc)  # (n * k, *shape): one batch through G
            cand_err = mse(drawn, np.repeat(x, k, axis=0)).reshape(n, k)
            pick = cand_err.argmin(axis=1)
            better = cand_err[np.arange(n), pick] < best_err
            rows = np.arange(n) * k + pick
            best[better] = cand[rows[better]]
            best_x[better] = drawn[rows[better]]
            best_err[better] = cand_err[np.arange(n), pick][better]
            left -= k
    return Inverted(best, best_x, best_err, err, refine)
