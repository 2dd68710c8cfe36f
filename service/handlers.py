"""The endpoints' work, from a validated request to an HTTP response, independent of BentoML.

Checks that need the model (latent size, sample shape, image kind) raise RequestError naming the
field; errors.py turns every failure into a JSON answer.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from . import encoding, labels, latents, sampling, versions
from .engine import Engine, LoadedModel, NoDiscriminator
from .errors import RequestError
from .metrics import count_samples
from .schemas import DEFAULT_N, InterpolateRequest, SampleRequest

# Requests whose latents and samples hold at most this many values in all are served on the event
# loop (sample_async): 64 MNIST digits are 56,576 (their latents take 0.1 ms to draw, json 1.2 ms,
# a png grid 2.1 ms on this machine; npy a copy).
LOOP_MAX_VALUES = 1 << 16
# A request of at most this many samples from a client that has the server to itself
# (batching.SoleClient) runs its graphs on the loop: at n = 1 the run takes ~0.1 ms, less than
# the two thread hand-offs of the batcher's path; at 8 MNIST digits ~0.3 ms.
INLINE_MAX_N = 8
# Truncation redraws the coordinates beyond the threshold until none is left: at a keep probability
# of 0.5 (|z| <= 0.67) a few dozen cheap rounds, at 0.01 a thousand. Below this, a worker thread draws.
LOOP_MIN_KEEP_PROBABILITY = 0.5
# Values (n x sample size) one answer may hold: 256 MB of float32. max n (4096) is sized for small
# samples; at 3x64x64 it stays under this (4096 x 12,288 = 50M), but 4096 RGB 256x256 images would
# be 3.2 GB in one response, so large images get at most MAX_VALUES // size per request (341 there).
MAX_VALUES = 1 << 26
# JSON answers whose samples hold more values than this are streamed, a block of rows at a time
# (encoding.json_chunks), when the caller can send a stream (the HTTP routes): the whole text
# peaked at 2.1x the answer (orjson's growing buffer, then the answer), the stream at the samples
# plus a block or two (0.6x at n = 4096 MNIST). Smaller answers stay one body with a
# Content-Length: up to about two blocks a stream held as much as the whole answer, or more
# (docs/PERFORMANCE.md, memory per request).
STREAM_MIN_VALUES = encoding.JSON_STREAM_MIN_VALUES


def _explicit_latents(model: LoadedModel, rows, field: str) -> np.ndarray:
    z = encoding.json_array(rows, field, dims=2)  # (n, z_dim), finite float32
    if z.shape[1] != model.card.latent.dim:
        raise RequestError(field, f"each latent must have {model.card.latent.dim} values for {model.name}, got {z.shape[1]}")
    return z


def _check_size(model: LoadedModel, n: int, field: str = "n") -> None:
    size = math.prod(model.card.sample.shape)
    if n * size > MAX_VALUES:
        raise RequestError(field, f"at most {MAX_VALUES // size} samples of {model.name} ({'x'.join(map(str, model.card.sample.shape))}) "
                                  f"per request, got {n}")


def _check_realness(model: LoadedModel, scores: bool, keep: Optional[sampling.Filter] = None) -> None:
    """Realness of a generator-only model: refused (400 naming `model`) before anything runs."""
    if (scores or (keep is not None and keep.active)) and not model.has_discriminator:
        raise NoDiscriminator(model.name)


def _check_format(model: LoadedModel, fmt: str, nrow: Optional[int], scores: bool, dtype: str = "float32") -> None:
    if dtype == "uint8" and model.card.sample.kind != "image":
        raise RequestError("dtype", f"uint8 needs an image model; {model.name} makes {model.card.sample.kind}s, "
                                    "whose values have no pixel range (use float32)")
    if fmt == "png" and model.card.sample.kind != "image":
        raise RequestError("format", f"png needs an image model; {model.name} makes {model.card.sample.kind}s (use json or npy)")
    if nrow is not None and fmt != "png":
        raise RequestError("nrow", "only applies to format png")
    if scores and fmt != "json":
        raise RequestError("scores", "only with format json (score an npy or png with POST /score)")


def _truncation(model: LoadedModel, truncation: Optional[float]) -> None:
    try:
        latents.check_truncation(model.card.latent, truncation)
    except ValueError as e:
        raise RequestError("truncation", str(e)) from None


def respond(model: LoadedModel, x: np.ndarray, logits: Optional[np.ndarray], fmt: str, nrow: Optional[int], meta: dict,
            classes: Optional[np.ndarray] = None, by_class: bool = False, dtype: str = "float32",
            stream: bool = False) -> Response:
    """x: (k, *sample_shape). json carries meta as fields; npy and png carry it as headers
    (X-Model, X-Model-Version, X-Seed or X-Seeds, X-Shape, and with a filter X-Requested, X-Drawn,
    X-Accepted, X-Exhausted and, for drs, X-Drs-Gamma). A conditional model's classes (k,) go as
    the `labels` field or the X-Labels header; `by_class` (labels "balanced", no nrow) lays a png
    grid out one class per row. `dtype` uint8 (json, npy): the samples as 0..255 pixels, mapped
    from the card's value range as a png grid maps them. `stream`: a large json answer may be a
    StreamingResponse (chunked, no Content-Length), its text made as it is sent; the caller must
    keep what it holds for the request (its admission) until the body has been sent."""
    count_samples(model.name, len(x))
    meta = {"model": model.name, "version": model.card.version, **meta, "shape": list(x.shape)}
    if fmt != "png":
        if dtype == "uint8":
            x = encoding.to_uint8(x, model.card.sample.value_range)
        meta["dtype"] = dtype
    if fmt == "json":
        body = {**meta, "samples": x}
        if classes is not None:
            body["labels"] = classes
        if logits is not None:
            body["realness"] = sampling.realness(logits)
            body["logit"] = logits.astype(np.float32)
        if stream and x.size > STREAM_MIN_VALUES:
            return StreamingResponse(encoding.json_chunks(body, "samples"), media_type="application/json")
        return Response(encoding.json_bytes(body), media_type="application/json")
    headers = {f"X-{k.replace('_', '-').title()}": _header_value(v) for k, v in meta.items() if v is not None and k != "version"}
    headers["X-Model-Version"] = model.card.version
    if classes is not None:
        headers[labels.HEADER] = labels.header_value(classes)
    if fmt == "npy":
        return Response(encoding.npy_bytes(x), media_type=encoding.NPY_MEDIA_TYPE, headers=headers)
    if len(x) == 0:
        raise RequestError("min_realness", f"no sample passed the filter in {meta.get('drawn')} draws: nothing to draw a grid of", 422)
    if by_class and classes is not None and nrow is None:
        x, nrow = labels.rows_by_class(x, classes, model.card.condition.classes, model.card.sample.value_range[0])
    return Response(encoding.png_grid(x, model.card.sample.value_range, nrow), media_type=encoding.PNG_MEDIA_TYPE, headers=headers)


def _header_value(v) -> str:
    if isinstance(v, bool):  # as JSON spells it, not Python's True / False
        return "true" if v else "false"
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _checked(engine: Engine, req: SampleRequest) -> tuple[LoadedModel, sampling.Filter]:
    """The model a sample request names, once every check that needs no graph run has passed."""
    model = versions.pinned(engine, req.model, req.version)
    _check_format(model, req.format, req.nrow, req.scores, req.dtype)
    _truncation(model, req.truncation)
    if req.latents is not None:
        if req.seed is not None:
            raise RequestError("seed", "give a seed or latents, not both")
        if req.truncation is not None:
            raise RequestError("truncation", "applies to drawn latents only, not to explicit ones")
    keep = sampling.Filter(req.min_realness, req.drs, req.drs_gamma)
    _check_realness(model, req.scores, keep)
    _check_size(model, len(req.latents) if req.latents is not None else (req.n or DEFAULT_N))
    return model, keep.resolved(model)


def _given_latents(model: LoadedModel, req: SampleRequest) -> np.ndarray:
    z = _explicit_latents(model, req.latents, "latents")
    if req.n is not None and req.n != len(z):
        raise RequestError("n", f"must equal the number of latents ({len(z)}) or be left out")
    return z


def _seed(req: SampleRequest) -> int:
    """The request's seed, or a fresh one (returned to the caller)."""
    return latents.random_seed() if req.seed is None else req.seed


def _answer(model: LoadedModel, req: SampleRequest, batch: sampling.Batch, seed: Optional[int], keep: sampling.Filter,
            requested: int, stream: bool = False) -> Response:
    meta = {"seed": seed}
    if keep.active:
        # `exhausted`: the draw bound (n x GANSERVE_MAX_DRAWS_FACTOR) ran out before n passed.
        # Explicit latents are filtered without redraws, so they never exhaust anything.
        meta.update(requested=requested, drawn=batch.drawn, accepted=len(batch.samples), exhausted=batch.exhausted)
        if keep.drs:
            meta["drs_gamma"] = keep.gamma
    return respond(model, batch.samples, batch.logits if req.scores else None, req.format, req.nrow, meta,
                   batch.labels, by_class=req.labels == labels.BALANCED, dtype=req.dtype, stream=stream)


def _classes(model: LoadedModel, req: SampleRequest, n: int, seed: Optional[int]) -> Optional[np.ndarray]:
    plan = labels.resolve(model, req.labels, n, seed)
    return None if plan is None else plan.classes


def sample(engine: Engine, req: SampleRequest, max_draws_factor: int, stream: bool = False) -> Response:
    """POST /sample in a worker thread (any request). `stream`: see respond."""
    model, keep = _checked(engine, req)
    if req.latents is not None:
        z = _given_latents(model, req)
        batch = sampling.generate(model, z, with_logits=req.scores or keep.active, c=_classes(model, req, len(z), None),
                                  with_ratio=keep.drs)
        if keep.active:  # explicit latents are filtered, never replaced by new draws
            batch = sampling.filtered(model, batch, keep)
        seed = None
    else:
        seed = _seed(req)
        n = req.n or DEFAULT_N
        c = _classes(model, req, n, seed)
        batch = sampling.from_seed(model, n, seed, req.truncation, req.scores, keep, n * max_draws_factor, c)
    return _answer(model, req, batch, seed, keep, len(req.latents) if req.latents is not None else n, stream)


async def sample_async(engine: Engine, req: SampleRequest, max_draws_factor: int, alone: bool = False) -> Response:
    """POST /sample from the event loop. A small request without a filter is served right here,
    its graph runs awaited (and batched with its neighbours', off the loop): its latents and its
    encoding take at most ~2 ms. Anything larger, any filter, and a tight truncation go whole to
    a worker thread, so that the loop never stalls on one request's milliseconds of numpy, orjson
    or zlib. `alone` (no other client is sending requests): a request of up to INLINE_MAX_N samples
    runs its graphs right here too, without the batcher's thread hand-offs."""
    model, keep = _checked(engine, req)
    n = len(req.latents) if req.latents is not None else (req.n or DEFAULT_N)
    values = n * (model.card.latent.dim + math.prod(model.card.sample.shape))
    slow_draw = req.truncation is not None and latents.keep_probability(model.card.latent, req.truncation) < LOOP_MIN_KEEP_PROBABILITY
    if keep.active or values > LOOP_MAX_VALUES or slow_draw:
        return await run_in_threadpool(sample, engine, req, max_draws_factor, True)  # a large json answer streams
    if req.latents is not None:
        z, seed = _given_latents(model, req), None
    else:
        seed = _seed(req)
        z = latents.draw(latents.generator(seed), model.card.latent, n, req.truncation)
    c = _classes(model, req, len(z), seed)
    if alone and n <= INLINE_MAX_N and model.inline_ok:
        x = model.generate_inline(z, c)
        logits = model.logits_inline(x, c) if req.scores else None
    else:
        x = await model.generate_async(z, c)
        logits = await model.logits_async(x, c) if req.scores else None
    return _answer(model, req, sampling.Batch(x, logits, len(z), c), seed, keep, n)


def interpolate(engine: Engine, req: InterpolateRequest, stream: bool = False) -> Response:
    """POST /interpolate (in a worker thread). `stream`: see respond."""
    model = versions.pinned(engine, req.model, req.version)
    _check_format(model, req.format, req.nrow, req.scores)
    _check_realness(model, req.scores)
    _check_size(model, req.steps, "steps")
    _truncation(model, req.truncation)
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
    z = sampling.path(a, b, req.steps, req.method)  # (steps, z_dim)
    batch = sampling.generate(model, z, with_logits=req.scores, c=_walk_classes(model, req, seeds))
    meta = {"seeds": list(seeds) if seeds else None, "method": req.method}
    return respond(model, batch.samples, batch.logits, req.format, req.nrow, meta, batch.labels, stream=stream)


def _walk_classes(model: LoadedModel, req: InterpolateRequest, seeds) -> Optional[np.ndarray]:
    """A conditional model walks its latent path within one class: the graphs take the class as an
    int64 index (no class embedding to interpolate), so a walk between two classes is refused.
    Without labels the class is drawn from the first seed, like a sample's."""
    value = req.labels
    if isinstance(value, list):
        distinct = {labels.resolve(model, v, 1, None).classes[0] for v in value} if model.conditional else set()
        if len(distinct) > 1:
            raise RequestError(labels.FIELD, f"model {model.name!r} takes its class as an integer index, not an "
                                             "embedding it could interpolate: walk within one class (give one label)")
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
