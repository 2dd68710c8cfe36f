"""The endpoints' work, from a validated request to an `Answer`, without HTTP.

`sample`, `sample_async` and `interpolate` check the request against the model (raising
RequestError naming the field), draw or take the latents, run the graphs and return the samples
with the answer's fields. `http/handlers.py` renders an Answer as json, npy or png; the charges
(`sample_charge`, `interpolate_charge`) are what admission control holds while a request runs.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Optional, TypeVar

import anyio.to_thread
import numpy as np

from service.core import edits, encoding, formats, labels, latents, sampling, streaming, style, versions
from service.core.problems import RequestError
from service.core.schemas import DEFAULT_N, InterpolateRequest, SampleRequest
from service.runtime import admission, tracing
from service.runtime.engine import Engine
from service.runtime.model import LoadedModel, NoDiscriminator

R = TypeVar("R")

# Requests whose latents and samples hold at most this many values in all are served on the event
# loop (sample_async): drawing their latents and encoding their answer take about as long as a
# thread hand-off (docs/PERFORMANCE.md#finding-event-loop-route).
LOOP_MAX_VALUES = 1 << 16
# A request of at most this many samples from a client that has the server to itself
# (batching.SoleClient) runs its graphs on the loop: at a few samples the run costs less than the
# two thread hand-offs of the batcher's path.
INLINE_MAX_N = 8
# Truncation redraws the coordinates beyond the threshold until none is left: at a keep probability
# of 0.5 (|z| <= 0.67) a few dozen cheap rounds, at 0.01 a thousand. Below this, a worker thread draws.
LOOP_MIN_KEEP_PROBABILITY = 0.5
# Values (n x sample size) one answer may hold: 256 MB of float32. max n (4096) is sized for small
# samples; at 3x64x64 it stays under this (4096 x 12,288 = 50M), but 4096 RGB 256x256 images would
# be 3.2 GB in one response, so large images get at most MAX_VALUES // size per request (341 there).
MAX_VALUES = 1 << 26


@dataclass
class Answer:
    """What a request returns, before it is encoded: samples (k, *sample_shape), D's logits when
    asked for, and the answer's fields (`meta`: model, version, seed or seeds, shape, and with a
    filter requested, drawn, accepted, exhausted, drs_gamma). A conditional model's classes (k,)
    go beside them; `by_class` (labels "balanced", no nrow) lays a grid out one class per row;
    `dtype` uint8: json and npy carry 0..255 pixels mapped from the card's value range."""

    model: LoadedModel
    samples: np.ndarray
    logits: Optional[np.ndarray]
    format: str
    nrow: Optional[int]
    meta: dict = field(default_factory=dict)
    classes: Optional[np.ndarray] = None
    by_class: bool = False
    dtype: str = "float32"
    # A streamed answer (core/streaming.py): `samples` is its first block, these are the rest,
    # and `n` its number of samples in all.
    more_blocks: Optional[AsyncIterator[np.ndarray]] = None
    n: Optional[int] = None
    # A style-based model's ws (k, num_ws, w_dim) that drew the samples, where return_w asked for them.
    w: Optional[np.ndarray] = None

    @property
    def count(self) -> int:
        return len(self.samples) if self.n is None else self.n


def charge(card, n: int, fmt: str, draws: int = 1) -> int:
    """Admission's charge of n samples of a model answered in `fmt` (the format table's figures),
    drawn through a filter's rounds when `draws` > 1: every route's and the dataset blocks'."""
    spec = formats.get(fmt)
    return admission.sample_cost(
        n, card.latent.dim, card.sample.size, spec.peak_bytes_per_value, draws, spec.fixed_peak_bytes
    )


def requested_n(req: SampleRequest) -> int:
    """How many samples a /sample request asks for: one per latent or w row, else n."""
    for given in (req.latents, req.w):
        if given is not None:
            return len(given)
    return req.n or DEFAULT_N


def sample_charge(model: LoadedModel, req: SampleRequest, max_draws_factor: int) -> int:
    """Admission's charge of a /sample request: a filtered one (min_realness, drs) may draw up to
    n x max_draws_factor candidates, and holds its rejection rounds' blocks as it goes."""
    n = requested_n(req)
    filtered = req.min_realness is not None or req.drs
    return charge(model.card, n, req.format, max_draws_factor if filtered else 1)


def interpolate_charge(model: LoadedModel, req: InterpolateRequest) -> int:
    return charge(model.card, req.steps, req.format)


def _explicit_latents(model: LoadedModel, rows, field: str) -> np.ndarray:
    z = encoding.json_array(rows, field, dims=2)  # (n, z_dim), finite float32
    if z.shape[1] != model.card.latent.dim:
        raise RequestError(
            field, f"each latent must have {model.card.latent.dim} values for {model.name}, got {z.shape[1]}"
        )
    return z


def _check_size(model: LoadedModel, n: int, field: str = "n") -> None:
    size = math.prod(model.card.sample.shape)
    if n * size > MAX_VALUES:
        raise RequestError(
            field,
            f"at most {MAX_VALUES // size} samples of {model.name} ({'x'.join(map(str, model.card.sample.shape))}) "
            f"per request, got {n}",
        )


def _check_realness(model: LoadedModel, scores: bool, keep: Optional[sampling.Filter] = None) -> None:
    """Realness of a generator-only model: refused (400 naming `model`) before anything runs."""
    if (scores or (keep is not None and keep.active)) and not model.has_discriminator:
        raise NoDiscriminator(model.name)


def _check_format(model: LoadedModel, fmt: str, nrow: Optional[int], scores: bool, dtype: str = "float32") -> None:
    spec = formats.get(fmt)
    if dtype == "uint8" and model.card.sample.kind != "image":
        raise RequestError(
            "dtype",
            f"uint8 needs an image model; {model.name} makes {model.card.sample.kind}s, "
            "whose values have no pixel range (use float32)",
        )
    if spec.image_only and model.card.sample.kind != "image":
        others = " or ".join(f.name for f in formats.FORMATS.values() if not f.image_only)
        raise RequestError(
            "format", f"{fmt} needs an image model; {model.name} makes {model.card.sample.kind}s (use {others})"
        )
    if nrow is not None and not spec.grid:
        grids = ", ".join(f.name for f in formats.FORMATS.values() if f.grid)
        raise RequestError("nrow", f"only applies to format {grids}")
    if scores and fmt != formats.SCORE_FORMAT:
        raise RequestError("scores", f"only with format {formats.SCORE_FORMAT} (score an npy or png with POST /score)")


def _truncation(model: LoadedModel, truncation: Optional[float]) -> None:
    try:
        latents.check_truncation(model.card.latent, truncation)
    except ValueError as e:
        raise RequestError("truncation", str(e)) from None


def checked(engine: Engine, req: SampleRequest) -> tuple[LoadedModel, sampling.Filter]:
    """The model a sample request names, once every check that needs no graph run has passed,
    and its filter resolved against the card."""
    model = versions.pinned(engine, req.model, req.version)
    _check_format(model, req.format, req.nrow, req.scores, req.dtype)
    style.check(model, req, formats.SCORE_FORMAT)
    edits.check(model, req)
    _truncation(model, req.truncation)
    if req.latents is not None:
        if req.seed is not None:
            raise RequestError("seed", "give a seed or latents, not both")
        if req.truncation is not None:
            raise RequestError("truncation", "applies to drawn latents only, not to explicit ones")
    keep = sampling.Filter(req.min_realness, req.drs, req.drs_gamma)
    _check_realness(model, req.scores, keep)
    if req.w is not None and req.n is not None and req.n != len(req.w):
        raise RequestError("n", f"must equal the number of w rows ({len(req.w)}) or be left out")
    _check_size(model, requested_n(req))
    return model, keep.resolved(model)


def _given_latents(model: LoadedModel, req: SampleRequest) -> np.ndarray:
    z = _explicit_latents(model, req.latents, "latents")
    if req.n is not None and req.n != len(z):
        raise RequestError("n", f"must equal the number of latents ({len(z)}) or be left out")
    return z


def _seed(req: SampleRequest) -> int:
    """The request's seed, or a fresh one (returned to the caller)."""
    return latents.random_seed() if req.seed is None else req.seed


def answer_of(
    model: LoadedModel,
    req: SampleRequest,
    batch: sampling.Batch,
    seed: Optional[int],
    keep: sampling.Filter,
    requested: int,
) -> Answer:
    meta = {"seed": seed}
    if keep.active:
        # `exhausted`: the draw bound (n x GANSERVE_MAX_DRAWS_FACTOR) ran out before n passed.
        # Explicit latents are filtered without redraws, so they never exhaust anything.
        meta.update(requested=requested, drawn=batch.drawn, accepted=len(batch.samples), exhausted=batch.exhausted)
        if keep.drs:
            meta["drs_gamma"] = keep.gamma
    return Answer(
        model,
        batch.samples,
        batch.logits if req.scores else None,
        req.format,
        req.nrow,
        meta,
        batch.labels,
        by_class=req.labels == labels.BALANCED,
        dtype=req.dtype,
    )


def _classes(model: LoadedModel, req: SampleRequest, n: int, seed: Optional[int]) -> Optional[np.ndarray]:
    plan = labels.resolve(model, req.labels, n, seed)
    return None if plan is None else plan.classes


def sample(engine: Engine, req: SampleRequest, max_draws_factor: int) -> Answer:
    """POST /sample in a worker thread (any request)."""
    model, keep = checked(engine, req)
    if model.is_style and style.asked(req, style.W_PATH_FIELDS) is not None:
        return _sample_w(model, req, keep)
    if req.edit:
        return _sample_edited(model, req, keep)
    if req.latents is not None:
        z = _given_latents(model, req)
        batch = sampling.generate(
            model, z, with_logits=req.scores or keep.active, c=_classes(model, req, len(z), None), with_ratio=keep.drs
        )
        if keep.active:  # explicit latents are filtered, never replaced by new draws
            batch = sampling.filtered(model, batch, keep)
        seed = None
    else:
        seed = _seed(req)
        n = req.n or DEFAULT_N
        c = _classes(model, req, n, seed)
        batch = sampling.from_seed(model, n, seed, req.truncation, req.scores, keep, n * max_draws_factor, c)
    return answer_of(model, req, batch, seed, keep, len(req.latents) if req.latents is not None else n)


def _sample_edited(model: LoadedModel, req: SampleRequest, keep: sampling.Filter) -> Answer:
    """A single-graph model's request with `edit`: its latents (given, or the seed's, truncated as
    asked) moved along the directions, then drawn (core/edits.py); never filtered (edits.check)."""
    if req.latents is not None:
        z, seed = _given_latents(model, req), None
    else:
        seed = _seed(req)
        z = latents.draw(latents.generator(seed), model.card.latent, req.n or DEFAULT_N, req.truncation)
    c = _classes(model, req, len(z), seed)
    batch = sampling.generate(model, edits.apply_z(model, req, z), with_logits=req.scores, c=c)
    answer = answer_of(model, req, batch, seed, keep, len(z))
    answer.meta["edit"] = edits.described(req)
    return answer


def _sample_w(model: LoadedModel, req: SampleRequest, keep: sampling.Filter) -> Answer:
    """A style-based model's request in w space (core/style.py): never filtered (style.check)."""
    z = _given_latents(model, req) if req.latents is not None else None
    seed = _seed(req) if req.latents is None and req.w is None else None
    n = requested_n(req)
    x, ws, c, meta = style.draw(model, req, n, seed, z)
    logits = model.logits(x, c) if req.scores else None
    answer = answer_of(model, req, sampling.Batch(x, logits, len(x), c), seed, keep, n)
    answer.meta.update(meta)
    answer.w = ws if req.return_w else None
    return answer


async def sample_async(
    engine: Engine, req: SampleRequest, max_draws_factor: int, render: Callable[[Answer, bool], R], alone: bool = False
) -> R:
    """POST /sample from the event loop, rendered by `render(answer, in_thread)`. A small request
    without a filter is served right here, its graph runs awaited (and batched with its
    neighbours', off the loop). Anything larger, any filter, and a tight truncation go whole,
    rendering included, to a worker thread, so that the loop never stalls on one request's
    milliseconds of numpy, orjson or zlib. `alone` (no other client is sending requests): a
    request of up to INLINE_MAX_N samples runs its graphs right here too, without the batcher's
    thread hand-offs."""
    model, keep = checked(engine, req)
    if style.asked(req) is not None or req.edit:  # graph runs with numpy between: a worker thread's work
        return await anyio.to_thread.run_sync(lambda: render(sample(engine, req, max_draws_factor), True))
    n = requested_n(req)
    values = n * (model.card.latent.dim + math.prod(model.card.sample.shape))
    slow_draw = (
        req.truncation is not None
        and latents.keep_probability(model.card.latent, req.truncation) < LOOP_MIN_KEEP_PROBABILITY
    )
    if streaming.streams(req.format, n, keep.active):
        return render(await _streamed(model, req, keep, n), False)
    if keep.active or values > LOOP_MAX_VALUES or slow_draw:
        return await anyio.to_thread.run_sync(lambda: render(sample(engine, req, max_draws_factor), True))
    if req.latents is not None:
        z, seed = _given_latents(model, req), None
    else:
        seed = _seed(req)
        z = latents.draw(latents.generator(seed), model.card.latent, n, req.truncation)
    c = _classes(model, req, len(z), seed)
    if alone and n <= INLINE_MAX_N and model.inline_ok:
        with tracing.phase("graph run", rows=n, requests=1):  # on the loop, no batcher
            x = model.generate_inline(z, c)
            logits = model.logits_inline(x, c) if req.scores else None
    else:
        x = await model.generate_async(z, c)
        logits = await model.logits_async(x, c) if req.scores else None
    return render(answer_of(model, req, sampling.Batch(x, logits, len(z), c), seed, keep, n), False)


async def _streamed(model: LoadedModel, req: SampleRequest, keep: sampling.Filter, n: int) -> Answer:
    """A large unfiltered request as a streamed Answer (core/streaming.py): its latents drawn at
    once in a worker thread (the same draw as served whole), its first block computed."""
    if req.latents is not None:
        z, seed = await anyio.to_thread.run_sync(_given_latents, model, req), None
    else:
        seed = _seed(req)
        z = await anyio.to_thread.run_sync(
            lambda: latents.draw(latents.generator(seed), model.card.latent, n, req.truncation)
        )
    c = _classes(model, req, n, seed)
    rest = streaming.blocks(model, z, c, streaming.block_rows())
    first = await anext(rest)
    answer = answer_of(model, req, sampling.Batch(first, None, n, c), seed, keep, n)
    answer.more_blocks, answer.n = rest, n
    return answer


def interpolate(engine: Engine, req: InterpolateRequest) -> Answer:
    """POST /interpolate (in a worker thread)."""
    model = versions.pinned(engine, req.model, req.version)
    _check_format(model, req.format, req.nrow, req.scores)
    _check_realness(model, req.scores)
    _check_size(model, req.steps, "steps")
    _truncation(model, req.truncation)
    style.check_walk(model, req)
    if req.along is not None or req.seed is not None:
        return _walk_along(model, req)
    if req.seeds is not None and req.latents is not None:
        raise RequestError("seeds", "give two seeds or two latents, not both")
    if req.latents is not None:
        if req.truncation is not None:
            raise RequestError("truncation", "applies to seeds only, not to explicit latents")
        a, b = _explicit_latents(model, list(req.latents), "latents")
        seeds = None
    else:
        seeds = req.seeds or (latents.random_seed(), latents.random_seed())
        a, b = (sampling.one_latent(model, s, req.truncation) for s in seeds)
    c = _walk_classes(model, req, seeds)
    meta = {"seeds": list(seeds) if seeds else None}
    if model.is_style:  # the walk is in w, where style-based models are smooth
        x, walk_meta = style.walk(model, a, b, req, c)
        logits = model.logits(x, c) if req.scores else None
        return Answer(model, x, logits, req.format, req.nrow, meta | walk_meta, c)
    method = req.method or "slerp"
    z = sampling.path(a, b, req.steps, method)  # (steps, z_dim)
    batch = sampling.generate(model, z, with_logits=req.scores, c=c)
    meta["method"] = method
    return Answer(model, batch.samples, batch.logits, req.format, req.nrow, meta, batch.labels)


def _walk_along(model: LoadedModel, req: InterpolateRequest) -> Answer:
    """/interpolate with `along`: the first latent of `seed` (z, or its w) moved by each amount of
    the walk along the direction (core/edits.py), drawn by G."""
    if req.along is None:
        raise RequestError("seed", "a walk from one seed goes `along` a direction; between two seeds give `seeds`")
    if req.seeds is not None or req.latents is not None:
        field = "seeds" if req.seeds is not None else "latents"
        raise RequestError(field, "a walk `along` a direction starts from one `seed`, not two ends")
    seed = req.seed if req.seed is not None else latents.random_seed()
    c = _walk_classes(model, req, [seed])
    x, meta = edits.walk_along(model, req, sampling.one_latent(model, seed, req.truncation), c)
    logits = model.logits(x, c) if req.scores else None
    return Answer(model, x, logits, req.format, req.nrow, {"seed": seed} | meta, c)


def _walk_classes(model: LoadedModel, req: InterpolateRequest, seeds) -> Optional[np.ndarray]:
    """A conditional model walks its latent path within one class: the graphs take the class as an
    int64 index (no class embedding to interpolate), so a walk between two classes is refused.
    Without labels the class is drawn from the first seed, like a sample's."""
    value = req.labels
    if isinstance(value, list):
        distinct = {labels.resolve(model, v, 1, None).classes[0] for v in value} if model.conditional else set()
        if len(distinct) > 1:
            raise RequestError(
                labels.FIELD,
                f"model {model.name!r} takes its class as an integer index, not an "
                "embedding it could interpolate: walk within one class (give one label)",
            )
        if not model.conditional:
            labels.resolve(model, value, len(value), None)  # refuses labels for an unconditional model
        value = value[0] if value else None
    if value is None and model.conditional:  # one class for the walk, drawn from the first seed
        one = labels.resolve(model, None, 1, seeds[0] if seeds else None).classes[0]
        return np.full(req.steps, one, np.int64)
    plan = labels.resolve(model, value, req.steps, seeds[0] if seeds else None)
    if plan is not None and plan.policy == labels.BALANCED:
        raise RequestError(labels.FIELD, 'a walk stays within one class: give one label, not "balanced"')
    return None if plan is None else plan.classes
