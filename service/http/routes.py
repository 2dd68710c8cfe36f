"""The routes served by a small Starlette app mounted on the service, not by BentoML's API layer:

- `POST /sample`: declared as a BentoML API too (service.py: its schema in /docs.json, BentoML's
  clients), but served here, on the event loop (handlers.sample_async), which dispatch.py hands it
  to ahead of BentoML's router. BentoML's per-request API layer (its IO descriptors, a thread hop
  per request) cost more than everything else a small request does
  (docs/PERFORMANCE.md#finding-event-loop-route).
- `POST /interpolate`: likewise declared as a BentoML API and served here, in a worker thread,
  without BentoML's per-request API layer (docs/PERFORMANCE.md#finding-interpolate-route).
- `GET /models`: the models and the server's request limits; BentoML APIs are POST-only
  (../shared/STACK.md).
- `POST /score`: takes a JSON body, a raw .npy body or PNG images; BentoML parses every API body
  as JSON (or multipart with URL-fetching file fields), so raw bodies need a plain route.
- `POST /generate_dataset/submit` and `PUT /generate_dataset/cancel`: the dataset task's checks
  before BentoML takes a submit, and a cancel that stops the job (datasets/routes.py).
- `GET /docs.json`: BentoML's OpenAPI document, completed (openapi.py) with /models and /score, what
  /sample and /interpolate answer, and every route's refusals.
- `/v2/...`: the Open Inference Protocol (KServe V2), in service/v2.

service.py sets `app.state.bentoml_spec` when it is imported, and `app.state.engine` once the models
are loaded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.core import encoding, labels, requests, sampling, versions
from service.core.problems import RequestError
from service.core.schemas import MAX_N, InterpolateRequest, SampleRequest, ScoreRequest
from service.http import context, dataset_routes, handlers, openapi
from service.http.context import engine_of
from service.http.errors import to_response
from service.http.v2 import routes as v2_routes
from service.runtime import admission
from service.runtime.batching import SoleClient
from service.runtime.engine import Engine
from service.runtime.model import LoadedModel, NoDiscriminator
from service.settings import get_settings

T = TypeVar("T", bound=BaseModel)

JSON_TYPES = {"application/json", ""}
NPY_TYPES = {encoding.NPY_MEDIA_TYPE, "application/octet-stream"}
FORM_TYPE = "application/x-www-form-urlencoded"  # a form without files: answered "no PNG file"
SOLE_CLIENT = SoleClient()  # one per worker process: its event loop is the one shared resource


async def models(request: Request) -> Response:
    try:
        engine = engine_of(request)
    except RequestError as e:
        return to_response(e)
    refused = getattr(engine, "refused", {})  # registry.py: a changed folder that failed verification
    listed = [
        {
            "name": name,
            "status": "ready",
            "provider": m.provider,
            "backend": m.backend,
            "backend_reason": m.backend_reason,
            "version": m.card.version,
            # Without a discriminator: /sample and /interpolate, but no /score, scores or filters.
            "realness": m.has_discriminator,
            "classes": m.card.condition.names if m.card.condition else None,  # a conditional model's labels
            # A style-based model's w space: truncation_psi, mix, return_w and w apply to it.
            "style": {"w_dim": m.card.style.w_dim, "num_ws": m.card.style.num_ws} if m.card.style else None,
            "card": m.card.model_dump(mode="json"),
            **({"refused": refused[name]} if name in refused else {}),
        }
        for name, m in engine.models.items()
    ]
    listed += [{"name": name, "status": "unavailable", "reason": reason} for name, reason in engine.unavailable.items()]
    return JSONResponse(
        {
            "default_model": engine.default_model,
            "device": engine.provider_note,
            "layout": engine.layout_note,
            "limits": get_settings().limits(),
            "models": sorted(listed, key=lambda m: m["name"]),
        }
    )


async def _parsed(schema: type[T], body: bytes) -> T:
    if len(body) <= context.LOOP_MAX_BODY_BYTES:
        return schema.model_validate_json(body)
    return await run_in_threadpool(schema.model_validate_json, body)  # latents by the thousand: off the loop


class _Releasing:
    """An answer that gives its admission back once it has been sent (or has failed to be): the
    encoded body is held until then, so it counts against the budget until then. A streamed json
    answer (handlers.respond) holds its samples and makes its text while it is sent, so its
    budget is held until the last block has gone, or the client has left (Starlette then stops
    the stream at the next block)."""

    def __init__(self, response: Response, release: Callable[[], None]):
        self.response, self.release = response, release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.release()


async def _admitted(cost: int, work: Callable[[], Awaitable[Response]]) -> Response:
    """Run `work` once admission control lets `cost` bytes in (admission.py; 503 when it does not)."""
    release = await admission.get().enter(cost)
    try:
        response = await work()
    except BaseException:
        release()
        raise
    return _Releasing(response, release)


async def sample(request: Request) -> Response:
    """The same body and answers as the BentoML API declared in service.py."""
    try:
        req = await _parsed(SampleRequest, await request.body())
        alone = SOLE_CLIENT.alone(request.scope.get("client"), time.monotonic())
        engine, factor = engine_of(request), get_settings().max_draws_factor
        cost = requests.sample_charge(engine.get(req.model), req, factor)
        return await _admitted(cost, lambda: handlers.sample_async(engine, req, factor, alone))
    except Exception as e:  # every failure answers JSON (4xx for bad input), never a dead worker
        return to_response(e)


async def interpolate(request: Request) -> Response:
    """The same body and answers as the BentoML API declared in service.py; the walk runs in a
    worker thread (up to max n samples and their encoding)."""
    try:
        req = await _parsed(InterpolateRequest, await request.body())
        engine = engine_of(request)
        cost = requests.interpolate_charge(engine.get(req.model), req)
        return await _admitted(cost, lambda: run_in_threadpool(handlers.interpolate, engine, req, True))
    except Exception as e:  # every failure answers JSON (4xx for bad input), never a dead worker
        return to_response(e)


def _check_shape(model: LoadedModel, x: np.ndarray, field: str) -> np.ndarray:
    """x must be (n, *sample_shape) with 1 <= n <= max n."""
    shape = tuple(model.card.sample.shape)
    if x.ndim != 1 + len(shape) or x.shape[1:] != shape:
        raise RequestError(
            field, f"must have shape (n, {', '.join(map(str, shape))}) for {model.name}, got {tuple(x.shape)}"
        )
    if not 1 <= len(x) <= MAX_N:
        raise RequestError(field, f"must hold 1 to {MAX_N} samples, got {len(x)}")
    return x


async def _png_parts(request: Request, model_name: str | None) -> tuple[str | None, list[tuple[str, bytes]]]:
    """multipart/form-data: every file part is one PNG; a `model` text field may name the model."""
    try:
        form = await request.form(max_files=MAX_N, max_fields=16)
    except MultiPartException as e:
        raise RequestError("body", f"malformed form ({e.message})") from None
    except HTTPException as e:  # Starlette's own refusal (inside an app) of a form it cannot read
        raise RequestError("body", f"malformed form ({e.detail})", e.status_code) from None
    parts = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            parts.append((f"{key}[{len(parts)}]", await value.read()))
        elif key == "model":
            model_name = value
        else:
            raise RequestError(key, "unknown form field (send PNG files, and optionally `model`)")
    if not parts:
        raise RequestError("body", "the form holds no PNG file")
    return model_name, parts


async def score(request: Request) -> Response:
    """Realness D(x) = sigmoid(logit) for samples in the body; the model comes from the JSON
    body, a `model` form field or the `?model=` query parameter. Admitted by the body's size."""
    try:
        engine_of(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        kind = "json" if media_type in JSON_TYPES else "npy" if media_type in NPY_TYPES else "png"
        cost = admission.score_cost(len(await request.body()), kind)  # the guard has read it already
        return await _admitted(cost, lambda: _score(request))
    except Exception as e:
        return to_response(e)


async def _score(request: Request) -> Response:
    try:
        engine = engine_of(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        model_name = request.query_params.get("model")
        version = request.query_params.get("version")  # a pinned version (versions.py), as /sample's `version`
        wanted = labels.from_query(request.query_params.get("labels"))  # D(x | c) of npy and png bodies
        if media_type.startswith("multipart/") or media_type == FORM_TYPE:
            model_name, parts = await _png_parts(request, model_name)
            model = _image_model(engine, model_name, version)
            x = np.stack(
                [encoding.png_image(b, model.card.sample.shape, model.card.sample.value_range, f) for f, b in parts]
            )
        else:
            body = await request.body()
            if media_type in JSON_TYPES:
                req = ScoreRequest.model_validate_json(body)
                model = _scoring_model(engine, req.model or model_name, req.version or version)
                x = encoding.json_array(req.samples, "samples")
                wanted = req.labels if req.labels is not None else wanted
            elif media_type in NPY_TYPES:
                model = _scoring_model(engine, model_name, version)
                x = encoding.npy_array(body, "body")
            elif media_type == encoding.PNG_MEDIA_TYPE:
                model = _image_model(engine, model_name, version)
                x = encoding.png_image(body, model.card.sample.shape, model.card.sample.value_range, "body")[None]
            else:
                raise RequestError(
                    "content-type",
                    f"{media_type!r} is not accepted: send application/json, "
                    f"{encoding.NPY_MEDIA_TYPE}, {encoding.PNG_MEDIA_TYPE} or multipart/form-data",
                    415,
                )
        x = _check_shape(model, x, "samples" if media_type in JSON_TYPES else "body")
        c = labels.for_scoring(model, wanted, len(x))  # (n,) classes of a conditional model, else None
        logits = await run_in_threadpool(model.logits, x, c)  # (n,)
    except Exception as e:  # every failure answers JSON (4xx for bad input), never a dead worker
        return to_response(e)
    body = {
        "model": model.name,
        "version": model.card.version,
        "n": len(x),
        "realness": sampling.realness(logits),
        "logit": logits.astype(np.float32),
    }
    if c is not None:
        body["labels"] = c
    return Response(encoding.json_bytes(body), media_type="application/json")


def _scoring_model(engine: Engine, name: str | None, version: str | None) -> LoadedModel:
    """The model to score with; one without a discriminator is refused before the body is read."""
    model = versions.pinned(engine, name, version)
    if not model.has_discriminator:
        raise NoDiscriminator(model.name)
    return model


def _image_model(engine: Engine, name: str | None, version: str | None) -> LoadedModel:
    model = _scoring_model(engine, name, version)
    if model.card.sample.kind != "image":
        raise RequestError(
            "content-type", f"PNG images need an image model; {model.name} takes vectors (send JSON or .npy)"
        )
    return model


async def docs(request: Request) -> Response:
    """BentoML's OpenAPI document completed with these routes (openapi.py), made once."""
    document = getattr(request.app.state, "openapi_document", None)
    if document is None:
        bentoml_spec = getattr(request.app.state, "bentoml_spec", None)  # set by service.py
        if bentoml_spec is None:
            return to_response(RequestError("server", "the service is still starting", 503))
        try:
            spec = openapi.complete(bentoml_spec(), token_required=get_settings().token_required)
            document = json.dumps(spec, separators=(",", ":")).encode()
            request.app.state.openapi_document = document
        except Exception as e:
            return to_response(e)
    return Response(document, media_type="application/json")


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/sample", sample, methods=["POST"]),
            Route("/interpolate", interpolate, methods=["POST"]),
            Route("/models", models, methods=["GET"]),
            Route("/score", score, methods=["POST"]),
            Route("/docs.json", docs, methods=["GET"]),
            *v2_routes.routes(),  # the Open Inference Protocol (service/v2)
            Route("/generate_dataset/submit", dataset_routes.submit, methods=["POST"]),
            Route(dataset_routes.CANCEL_PATH, dataset_routes.cancel, methods=["PUT"]),
        ]
    )
