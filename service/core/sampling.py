"""What the endpoints compute, on a loaded model: samples (optionally filtered by D), paths
between latents, and realness scores. No HTTP here; runtime/model.py LoadedModel does the graph runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from service.core import latents
from service.runtime import cancellation
from service.runtime.model import LoadedModel

DRS_EPSILON = 1e-6  # Azadi et al. (2019), eq. 8: keeps log(1 - exp(.)) finite at the max logit


def realness(logits: np.ndarray) -> np.ndarray:
    """The one place the service applies sigmoid: D's logit -> realness in (0, 1).
    0.5 * (1 + tanh(l / 2)) is sigmoid without exp overflow for large |l|."""
    return (0.5 * (1.0 + np.tanh(logits.astype(np.float64) / 2.0))).astype(np.float32)


@dataclass
class Filter:
    """Discriminator-based rejection. `min_realness`: keep samples with realness >= it (a hard
    threshold: it can drop whole modes that D scores lower). `drs`: discriminator rejection
    sampling (Azadi et al. 2019) against the card's max logit, its acceptance shifted by `gamma`
    (higher gamma: stricter); None takes the gamma the card recommends (chosen at calibration for
    a target acceptance rate), else 0."""

    min_realness: Optional[float] = None
    drs: bool = False
    gamma: Optional[float] = None

    @property
    def active(self) -> bool:
        return self.min_realness is not None or self.drs

    def resolved(self, model: LoadedModel) -> Filter:
        """This filter with its gamma decided: the request's, else the card's, else 0."""
        if self.gamma is not None:
            return self
        return Filter(self.min_realness, self.drs, card_drs_gamma(model.card))


def card_drs_gamma(card) -> float:
    """The DRS gamma a request without one gets: the card's (chosen at calibration for a target
    acceptance rate), else 0, the exact sampler of the estimated ratio. No D, no gamma."""
    gamma = card.realness.drs_gamma if card.realness is not None else None
    return gamma if gamma is not None else 0.0


@dataclass
class Batch:
    samples: np.ndarray  # (k, *sample_shape) float32
    logits: Optional[np.ndarray]  # (k,) float32, when scores or a filter that reads realness were asked for
    drawn: int  # latents drawn (== k without a filter)
    labels: Optional[np.ndarray] = None  # (k,) int64: a conditional model's class of each sample
    exhausted: bool = False  # the draw bound ran out before n samples passed the filter
    ratio_logits: Optional[np.ndarray] = None  # (k,): what DRS rejects by, where not `logits` (card.drs_role)


def generate(
    model: LoadedModel, z: np.ndarray, with_logits: bool, c: Optional[np.ndarray] = None, with_ratio: bool = False
) -> Batch:
    """Samples for explicit (n, z_dim) latents (and, for a conditional model, (n,) classes c);
    `with_ratio`: also DRS's own logits, where the card keeps them apart (for `filtered`)."""
    x = model.generate(z, c)
    if not with_logits:
        return Batch(x, None, len(z), c)
    return Batch(x, model.logits(x, c), len(z), c, ratio_logits=model.ratio_logits(x, c) if with_ratio else None)


def from_seed(
    model: LoadedModel,
    n: int,
    seed: int,
    truncation: Optional[float],
    with_logits: bool,
    keep: Filter,
    max_draws: int,
    c: Optional[np.ndarray] = None,
) -> Batch:
    """n samples from the seed's latent stream; with an active filter, draw until n pass or
    `max_draws` latents were drawn (then fewer than n come back, `exhausted` is set and `drawn`
    says how many tried). The batch's realness logits are None where nothing asked for them
    (`drs` alone, on a model with a ratio.onnx).

    A conditional model's n samples are slots of the classes c (n,). Under a filter every candidate
    is drawn for a slot still open, in turn, and judged by D(x | its class); an accepted one fills
    the first open slot of its class, so the answer keeps the order (and classes) asked for, less
    the slots no candidate filled within the bound."""
    rng = latents.generator(seed)
    if not keep.active:
        return generate(model, latents.draw(rng, model.card.latent, n, truncation), with_logits, c)
    keep = keep.resolved(model)
    coins = latents.generator(seed, stream=1)  # DRS's uniforms: independent of the latents
    max_logit = model.card.realness.max_logit
    slots = np.zeros(n, np.int64) if c is None else np.asarray(c, np.int64)  # one class for an unconditional model
    filled = np.full(n, -1, np.int64)  # slot -> index into the candidates kept
    # A model that keeps DRS's ratio in a graph of its own (ratio.onnx) runs only that one for
    # `drs` without scores or min_realness; otherwise DRS (if asked) rejects by the realness logit.
    realness_needed = with_logits or keep.min_realness is not None or not model.has_ratio
    kept_x, kept_l, accepted, drawn = [], [], 0, 0
    while accepted < n and drawn < max_draws:
        cancellation.check()  # a departed client's rounds stop here (runtime/cancellation.py)
        # First twice n; then what is missing at the acceptance seen so far, with a margin, so a
        # filter that keeps 1 in 10 needs a round or two rather than one per halving.
        missing = n - accepted
        want = 2 * missing if accepted == 0 else math.ceil(1.25 * missing * drawn / accepted)
        chunk = min(max_draws - drawn, max(want, 16))
        open_slots = np.flatnonzero(filled < 0)
        cand = slots[open_slots][np.arange(chunk) % len(open_slots)]  # (chunk,) classes of the candidates
        cand_c = None if c is None else cand
        z = latents.draw(rng, model.card.latent, chunk, truncation)
        x = model.generate(z, cand_c)
        logit = model.logits(x, cand_c) if realness_needed else None
        ratio = model.ratio_logits(x, cand_c) if keep.drs else None
        drawn += chunk
        if keep.drs:  # the paper updates D*_M as it goes
            max_logit = max(max_logit, float((logit if ratio is None else ratio).max()))
        ok = passes(logit, keep, max_logit, coins.random(chunk), ratio)
        for k in np.unique(slots[open_slots]):
            want = open_slots[slots[open_slots] == k]
            take = np.flatnonzero(ok & (cand == k))[: len(want)]
            filled[want[: len(take)]] = accepted + np.arange(len(take))
            kept_x.append(x[take])
            if realness_needed:
                kept_l.append(logit[take])
            accepted += len(take)
    order = filled[filled >= 0]  # the slots filled, in slot order
    samples = np.concatenate(kept_x)[order] if kept_x else np.zeros((0, *model.card.sample.shape), np.float32)
    logits = (np.concatenate(kept_l)[order] if kept_l else np.zeros(0, np.float32)) if realness_needed else None
    return Batch(samples, logits, drawn, None if c is None else slots[filled >= 0], exhausted=accepted < n)


def passes(
    logit: Optional[np.ndarray],
    keep: Filter,
    max_logit: float,
    uniforms: np.ndarray,
    ratio: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Which samples the filter keeps: (k,) realness logits, (k,) uniforms in [0, 1) -> (k,) bool.
    `ratio`: the (k,) logits DRS rejects by, where the card keeps them apart (default: `logit`);
    `max_logit` is theirs. `logit` may be None where only `ratio` is needed (drs alone)."""
    ok = np.ones(len(uniforms), dtype=bool)
    if keep.min_realness is not None:
        ok &= realness(logit) >= keep.min_realness
    if keep.drs:
        ok &= drs_accept(logit if ratio is None else ratio, max_logit, keep.gamma, uniforms)
    return ok


def filtered(model: LoadedModel, batch: Batch, keep: Filter) -> Batch:
    """Explicit latents under a filter: keep those that pass, draw no replacements. The DRS
    coins come from stream 1 of seed 0, so the same latents give the same answer."""
    keep = keep.resolved(model)
    ratio = batch.ratio_logits
    if ratio is None and keep.drs:
        ratio = model.ratio_logits(batch.samples, batch.labels)
    ratio = batch.logits if ratio is None else ratio
    max_logit = max(model.card.realness.max_logit, float(ratio.max(initial=-np.inf)))
    ok = passes(batch.logits, keep, max_logit, latents.generator(0, stream=1).random(len(batch.logits)), ratio)
    labels = None if batch.labels is None else batch.labels[ok]
    return Batch(batch.samples[ok], batch.logits[ok], batch.drawn, labels)


def drs_accept(logit: np.ndarray, max_logit: float, gamma: float, uniforms: np.ndarray) -> np.ndarray:
    """Azadi et al. (2019), Algorithm 1: F = D~(x) - D*_M - log(1 - exp(D~(x) - D*_M - eps)) - gamma,
    accept when sigmoid(F) > u. exp(D~(x) - D*_M) estimates p_data(x) / (M p_g(x))."""
    d = logit.astype(np.float64) - max_logit  # <= 0
    f = d - np.log(-np.expm1(d - DRS_EPSILON)) - gamma
    return realness(f) > uniforms


def path(a: np.ndarray, b: np.ndarray, steps: int, method: str) -> np.ndarray:
    """`steps` latents from a to b, both ends included: (z_dim,), (z_dim,) -> (steps, z_dim)."""
    t = np.linspace(0.0, 1.0, steps)
    return latents.slerp(a, b, t) if method == "slerp" else latents.lerp(a, b, t)


def one_latent(model: LoadedModel, seed: int, truncation: Optional[float]) -> np.ndarray:
    """The first latent of a seed's stream: (z_dim,), the same as sample n=1 with that seed."""
    return latents.draw(latents.generator(seed), model.card.latent, 1, truncation)[0]
