"""What a request must return, computed straight from the model folder: the card, the seed's
latents (core/latents.py, the contract that makes a seed portable) and onnxruntime on the graphs.
No server code path is in between, so a door that drops an option (truncation on the fast path, a
walk's truncation, a class) answers something this does not.

The reference re-derives what the service decides on its own (default labels drawn from the seed,
the grid's layout, uint8's mapping, slerp) from their documented definitions (docs/API.md), not by
calling the service's functions for them.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnxruntime as ort

from models.card import CARD_FILE, ModelCard
from service.core import latents as seeds

DEFAULT_N = 16  # docs/API.md: n defaults to 16 (or to the number of latents)
LABEL_STREAM = 2  # docs/API.md: labels drawn from the seed on PCG64 stream 2
GRID_PADDING = 2  # docs/API.md: tiles of a png grid are 2 pixels apart, on black


@dataclass
class Expected:
    samples: np.ndarray  # (n, *shape) float32
    logits: Optional[np.ndarray]  # (n,) float32, D's logit of each sample
    labels: Optional[np.ndarray]  # (n,) int64 for a conditional model
    w: Optional[np.ndarray] = None  # (n, num_ws, w_dim): a style-based model's ws, with return_w


W_SPACE_FIELDS = ("truncation_psi", "truncation_cutoff", "mix", "return_w", "w")


class Reference:
    """One model folder, its graphs opened by onnxruntime on the CPU with default options."""

    def __init__(self, folder: Path):
        self.card = ModelCard.model_validate_json((folder / CARD_FILE).read_text())
        self.sessions = {
            role: ort.InferenceSession(str(folder / f"{role}.onnx"), providers=["CPUExecutionProvider"])
            for role in ("generator", "mapping", "synthesis", "discriminator")
            if (folder / f"{role}.onnx").is_file()
        }
        self.style = self.card.style
        self.w_avg = np.load(folder / "w_avg.npy", allow_pickle=False) if self.style else None

    # --- the request's parts, from their definitions ---

    def latents(self, seed: int, n: int, truncation: Optional[float] = None) -> np.ndarray:
        return seeds.draw(seeds.generator(seed), self.card.latent, n, truncation)

    def classes(self, labels, n: int, seed: Optional[int]) -> Optional[np.ndarray]:
        cond = self.card.condition
        if cond is None:
            return None
        if labels is None:
            return seeds.generator(seed, stream=LABEL_STREAM).integers(0, cond.classes, size=n, dtype=np.int64)
        if labels == "balanced":
            return np.arange(n, dtype=np.int64) % cond.classes
        if isinstance(labels, list):
            return np.array([cond.index(v) for v in labels], np.int64)
        return np.full(n, cond.index(labels), np.int64)

    def generate(self, z: np.ndarray, c: Optional[np.ndarray]) -> np.ndarray:
        if self.style is not None:  # docs/API.md: w = mapping(z [, c]) on every layer, then synthesis
            return self.synthesize(self.broadcast(self.map(z, c)))
        session = self.sessions["generator"]
        feeds = {self.card.onnx.generator.inputs[0].name: z.reshape(len(z), *self.card.latent.graph_shape)}
        if c is not None:
            feeds[self.card.condition.input] = c
        return session.run(None, feeds)[0]

    # --- w space (style-based models) ---

    def map(self, z: np.ndarray, c: Optional[np.ndarray]) -> np.ndarray:
        feeds = {self.card.onnx.mapping.inputs[0].name: z}
        if c is not None:
            feeds[self.card.condition.input] = c
        return self.sessions["mapping"].run(None, feeds)[0]

    def broadcast(self, w: np.ndarray) -> np.ndarray:
        return np.repeat(w[:, None], self.style.num_ws, axis=1)

    def synthesize(self, ws: np.ndarray) -> np.ndarray:
        return self.sessions["synthesis"].run(None, {self.card.onnx.synthesis.inputs[0].name: ws})[0]

    def seed_ws(self, seed: int, n: int, labels) -> tuple[np.ndarray, Optional[np.ndarray]]:
        c = self.classes(labels, n, seed)
        return self.broadcast(self.map(self.latents(seed, n), c)), c

    def truncate(self, ws: np.ndarray, psi: Optional[float], cutoff: Optional[int]) -> np.ndarray:
        """docs/API.md: w' = w_avg + psi (w - w_avg) on the first `cutoff` layers (all by default), float32."""
        if psi is None:
            return ws
        k = cutoff or self.style.num_ws
        ws = ws.copy()
        ws[:, :k] = self.w_avg[None, None] + psi * (ws[:, :k] - self.w_avg[None, None])
        return ws

    def sample_w(self, body: dict) -> Expected:
        """A /sample request with w-space fields: ws from w, the latents or the seed; the mix seed's
        ws from `from_layer` on; then truncation; then synthesis."""
        labels = body.get("labels")
        if body.get("w") is not None:
            ws = np.asarray(body["w"], np.float32)
            ws = self.broadcast(ws) if ws.ndim == 2 else ws
            c = self.classes(labels, len(ws), None) if labels is not None else None
        elif body.get("latents") is not None:
            z = np.asarray(body["latents"], np.float32)
            c = self.classes(labels, len(z), None)
            ws = self.broadcast(self.map(z, c))
        else:
            ws, c = self.seed_ws(body["seed"], body.get("n") or DEFAULT_N, labels)
        if body.get("mix") is not None:
            k = body["mix"]["from_layer"]
            ws[:, k:] = self.seed_ws(body["mix"]["seed"], len(ws), labels)[0][:, k:]
        ws = self.truncate(ws, body.get("truncation_psi"), body.get("truncation_cutoff"))
        x = self.synthesize(ws)
        logits = self.logits(x, c) if body.get("scores") else None
        return Expected(x, logits, c, ws if body.get("return_w") else None)

    def logits(self, x: np.ndarray, c: Optional[np.ndarray]) -> np.ndarray:
        feeds = {self.card.onnx.discriminator.inputs[0].name: x}
        if c is not None:
            feeds[self.card.condition.input] = c
        return self.sessions["discriminator"].run(None, feeds)[0].reshape(-1)

    # --- whole answers ---

    def sample(self, body: dict) -> Expected:
        """A /sample request, unfiltered or with a filter whose answer needs no draw by D: explicit
        latents under `min_realness` keep those that pass, in order, and draw none in their place
        (docs/API.md); `min_realness` 0 with a seed and no truncation keeps the seed's first n. DRS and other
        thresholds on a seed draw by D's answers, which the service's own tests check."""
        if any(body.get(f) is not None and body.get(f) is not False for f in W_SPACE_FIELDS):  # psi 0.0 counts
            return self.sample_w(body)
        threshold = body.get("min_realness")
        if body.get("latents") is not None:
            z = np.asarray(body["latents"], np.float32)
            seed = None
        else:
            seed, n = body["seed"], body.get("n") or DEFAULT_N
            assert threshold in (None, 0.0), "a seed's filtered draws are not the reference's"
            z = self.latents(seed, n, body.get("truncation"))
        c = self.classes(body.get("labels"), len(z), seed)
        x = self.generate(z, c)
        logits = self.logits(x, c) if body.get("scores") or threshold is not None else None
        if threshold is not None:
            keep = realness(logits) >= threshold
            x, logits, c = x[keep], logits[keep], None if c is None else c[keep]
        return Expected(x, logits if body.get("scores") else None, c)

    def interpolate(self, body: dict) -> Expected:
        seeds_ = body["seeds"]
        a, b = (self.latents(s, 1, body.get("truncation"))[0] for s in seeds_)
        t = np.linspace(0.0, 1.0, body.get("steps", 8))
        c = self.classes(body.get("labels"), 1, seeds_[0])
        c = None if c is None else np.full(len(t), c[0], np.int64)
        if self.style is not None:  # docs/API.md: a style-based model walks in w, lerp by default
            w_a, w_b = self.map(np.stack([a, b]), None if c is None else c[:2])
            w = slerp(w_a, w_b, t) if body.get("method") == "slerp" else lerp(w_a, w_b, t)
            x = self.synthesize(self.truncate(self.broadcast(w), body.get("truncation_psi"), None))
            return Expected(x, self.logits(x, c) if body.get("scores") else None, c)
        z = slerp(a, b, t) if body.get("method", "slerp") == "slerp" else lerp(a, b, t)
        x = self.generate(z, c)
        return Expected(x, self.logits(x, c) if body.get("scores") else None, c)

    def uint8(self, x: np.ndarray) -> np.ndarray:
        """docs/API.md: the value range mapped onto 0..255, rounded, clipped (float32 arithmetic)."""
        lo, hi = self.card.sample.value_range
        scaled = (x.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def balanced_rows(self, labels: np.ndarray) -> int:
        """A "balanced" grid without nrow lays class k's samples in row k: tiles per row (docs/API.md)."""
        return max(int(np.bincount(labels, minlength=self.card.condition.classes).max()), 1)

    def grid_tiles(self, pixels: np.ndarray, n: int, nrow: Optional[int]) -> np.ndarray:
        """The n tiles of a decoded png grid (H', W', C) as (n, C, h, w) uint8."""
        _, h, w = self.card.sample.shape
        cols = min(nrow or max(1, math.ceil(math.sqrt(n))), n)
        out = []
        for i in range(n):
            r, col = divmod(i, cols)
            y, x = GRID_PADDING + r * (h + GRID_PADDING), GRID_PADDING + col * (w + GRID_PADDING)
            out.append(pixels[y : y + h, x : x + w].transpose(2, 0, 1))
        return np.stack(out)


def realness(logits: np.ndarray) -> np.ndarray:
    """D's realness, sigmoid of its logit (docs/API.md), as float32."""
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return ((1.0 - t[:, None]) * a + t[:, None] * b).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Shoemake's slerp in float64; lerp where the arc is undefined (docs/API.md)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0.0 or nb == 0.0:
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0))
    omega = math.acos(cos)
    if math.sin(omega) < 1e-6:
        return lerp(a, b, t)
    s = math.sin(omega)
    wa = np.sin((1.0 - t) * omega)[:, None] / s
    wb = np.sin(t * omega)[:, None] / s
    return (wa * a64 + wb * b64).astype(np.float32)


def curl(path: str, body: dict, url: str = "localhost:3000") -> str:
    """The request as a curl command line, for a failure message."""
    return f"curl -s {url}{path} -H 'content-type: application/json' -d {shlex.quote(json.dumps(body))}"
