"""POST /invert: images in (JSON, .npy, PNG, or PNG files), E's latents and G's reconstructions
out (core/inversion.py). A model without an encoder is a 400 naming `model`; a wrong shape or a
bad image, one naming the field. json answers the latents, errors and reconstructions; npy and
png answer the reconstructions, with the errors in the X-Error header. `?resize=true` resizes PNGs
of another size to the model's and says so (`resized` in JSON, the X-Resized header)."""

from __future__ import annotations

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.core import encoding, formats, inversion, labels, sampling, versions
from service.core.problems import RequestError
from service.core.schemas import MAX_REFINE, InvertRequest
from service.http.admitted import Charge, admitted_raising
from service.http.bodies import JSON_TYPES, NPY_TYPES, images_only, samples_in
from service.http.context import engine_of
from service.http.errors import to_response
from service.runtime import admission, tracing
from service.runtime.model import LoadedModel, NoDiscriminator, NoEncoder


def _pick(engine, name, version, png: bool) -> LoadedModel:
    model = versions.pinned(engine, name, version)
    if not model.has_encoder:
        raise NoEncoder(model.name)
    return images_only(model) if png else model


def _query_int(request: Request, name: str, default: int, hi: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise RequestError(name, f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= hi:
        raise RequestError(name, f"must be in 0..{hi}, got {value}")
    return value


def _query_bool(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("1", "true", "0", "false"):
        raise RequestError(name, f"must be true or false, got {text!r}")
    return text in ("1", "true")


async def invert(request: Request) -> Response:
    try:
        engine_of(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        kind = "json" if media_type in JSON_TYPES else "npy" if media_type in NPY_TYPES else "png"
        # Decoding the body is charged like a score of it; once decoded, the charge is raised by
        # the answer and the search (inversion.charge), which only then are known.
        cost = admission.score_cost(len(await request.body()), kind)
        return await admitted_raising(cost, lambda charge: _invert(request, charge))
    except Exception as e:
        return to_response(e)


async def _invert(request: Request, charge: Charge) -> Response:
    try:
        model, x, wanted, req, resized = await samples_in(
            request, InvertRequest, _pick, resize=_query_bool(request, "resize")
        )
        q = request.query_params
        fmt = req.format if req is not None else q.get("format", "json")
        if fmt not in formats.NAMES:
            raise RequestError("format", f"must be one of {', '.join(formats.NAMES)}, got {fmt!r}")
        if fmt == "png" and model.card.sample.kind != "image":
            raise RequestError("format", f"png needs an image model; {model.name} makes {model.card.sample.kind}s")
        tracing.describe(model.name, model.card.version, len(x), fmt)
        refine = req.refine if req is not None else _query_int(request, "refine", 0, MAX_REFINE)
        seed = (req.seed if req is not None else None) or _query_int(request, "seed", 0, 2**63 - 1)
        scores = req.scores if req is not None else _query_bool(request, "scores")
        if scores and fmt != "json":
            raise RequestError("scores", "only with format json")
        if scores and not model.has_discriminator:
            raise NoDiscriminator(model.name)
        c = labels.for_scoring(model, wanted, len(x))  # a conditional model's class of each image
        await charge.raise_by(inversion.charge(model, len(x), fmt, refine))
        done = await run_in_threadpool(inversion.invert, model, x, c, refine, seed)
        logits = await run_in_threadpool(model.logits, done.reconstructions, c) if scores else None
    except Exception as e:
        return to_response(e)
    return _answer(model, done, c, fmt, logits, resized)


def _answer(model: LoadedModel, done: inversion.Inverted, c, fmt: str, logits, resized: list[str]) -> Response:
    meta = {"model": model.name, "version": model.card.version, "space": "w" if model.is_style else "z"}
    headers = {
        "X-Model": model.name,
        "X-Model-Version": model.card.version,
        "X-Error": ",".join(f"{e:.6g}" for e in done.errors),
        **({"X-Resized": "; ".join(resized)} if resized else {}),
    }
    if fmt == "npy":
        return Response(encoding.npy_bytes(done.reconstructions), media_type=encoding.NPY_MEDIA_TYPE, headers=headers)
    if fmt == "png":
        grid = encoding.png_grid(done.reconstructions, tuple(model.card.sample.value_range), None)
        return Response(grid, media_type=encoding.PNG_MEDIA_TYPE, headers=headers)
    body = {
        **meta,
        "n": len(done.errors),
        "latents": done.latents.astype(np.float32),
        "error": done.errors.astype(np.float32),
        "reconstructions": done.reconstructions,
    }
    if resized:  # what was inverted is not the image sent: say so beside the answer
        body["resized"] = resized
    if done.candidates:
        body["refine"] = {"candidates": done.candidates, "error_of_encoder": done.errors_of_e.astype(np.float32)}
    if c is not None:
        body["labels"] = c
    if logits is not None:
        body["realness"] = sampling.realness(logits)
        body["logit"] = logits.astype(np.float32)
    return Response(encoding.json_bytes(body), media_type="application/json")
