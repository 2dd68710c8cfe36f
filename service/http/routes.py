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
from typing import TypeVar

import numpy as np
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.core import encoding, labels, requests, sampling, versions
from service.core.problems import RequestError
from service.core.schemas import InterpolateRequest, SampleRequest, ScoreRequest
from service.http import caching, context, dataset_routes, disconnect, handlers, invert_routes, openapi
from service.http.admitted import admitted
from service.http.bodies import JSON_TYPES, NPY_TYPES, images_only, samples_in
from service.http.context import engine_of
from service.http.disconnect import cancellable
from service.http.errors import to_response
from service.http.v2 import routes as v2_routes
from service.runtime import admission, tracing
from service.runtime.batching import SoleClient
from service.runtime.engine import Engine
from service.runtime.model import LoadedModel, NoDiscriminator
from service.settings import get_settings

T = TypeVar("T", bound=BaseModel)

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
            "directions": list(m.directions),  # /sample's `edit` moves along these (directions.json)
            "encoder": m.has_encoder,  # POST /invert needs one
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


async def sample(request: Request) -> Response:
    """The same body and answers as the BentoML API declared in service.py."""
    try:
        return await _sample(request, await _parsed(SampleRequest, await request.body()), revalidate=False)
    except Exception as e:  # every failure answers JSON (4xx for bad input), never a dead worker
        return to_response(e)


async def sample_get(request: Request) -> Response:
    """GET /sample?seed=..&n=..: the cacheable door (http/caching.py), scalar fields only."""
    try:
        return await _sample(request, _query_request(request), revalidate=True)
    except Exception as e:
        return to_response(e)


def _query_request(request: Request) -> SampleRequest:
    fields: dict = {}
    for key, value in request.query_params.multi_items():
        if key in caching.BODY_ONLY:  # arrays and objects go in POST /sample's JSON body
            raise RequestError(key, "an array or object: send it in POST /sample's JSON body")
        if key in fields:
            raise RequestError(key, "given twice")
        fields[key] = value
    if "labels" in fields:  # "3", "class1", "balanced", or a list "0,1,1", as npy bodies' ?labels=
        fields["labels"] = labels.from_query(fields["labels"])
    return SampleRequest.model_validate(fields)


async def _sample(request: Request, req: SampleRequest, revalidate: bool) -> Response:
    """/sample with its cache headers; a GET whose If-None-Match names the answer's ETag gets 304
    before anything runs."""
    alone = SOLE_CLIENT.alone(request.scope.get("client"), time.monotonic())
    settings = get_settings()
    engine, factor = engine_of(request), settings.max_draws_factor
    model = versions.pinned(engine, req.model, req.version)
    if tracing.on():
        tracing.describe(model.name, model.card.version, requests.requested_n(req), req.format)
    cache_control = caching.cache_control(req, settings.token_required, settings.shared_cache_keys_token)
    tag = caching.etag(model, req, factor) if revalidate else None  # GET: it may answer 304 at once
    if revalidate and caching.matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=_cache_headers(cache_control, tag))
    cost = requests.sample_charge(model, req, factor)
    disconnect.watch(request.scope, cost)  # stopped if its client leaves, where that pays

    async def answer() -> Response:
        response = await handlers.sample_async(engine, req, factor, alone)
        if response.status_code == 200:
            # POST's tag is made only now (~7.5 us): a request that fails never needs one.
            answered = tag if revalidate else caching.etag(model, req, factor)
            response.headers.update(_cache_headers(cache_control, answered))
        return response

    return await admitted(cost, answer)


def _cache_headers(cache_control: str, tag: str | None) -> dict[str, str]:
    """A fresh-seed answer has no tag (caching.etag): Cache-Control alone, `no-store`."""
    return {"Cache-Control": cache_control, **({"ETag": tag} if tag is not None else {})}


async def interpolate(request: Request) -> Response:
    """The same body and answers as the BentoML API declared in service.py; the walk runs in a
    worker thread (up to max n samples and their encoding)."""
    try:
        req = await _parsed(InterpolateRequest, await request.body())
        engine = engine_of(request)
        model = engine.get(req.model)
        tracing.describe(model.name, model.card.version, req.steps, req.format)
        cost = requests.interpolate_charge(model, req)
        return await admitted(cost, lambda: run_in_threadpool(handlers.interpolate, engine, req, True))
    except Exception as e:  # every failure answers JSON (4xx for bad input), never a dead worker
        return to_response(e)


async def score(request: Request) -> Response:
    """Realness D(x) = sigmoid(logit) for samples in the body; the model comes from the JSON
    body, a `model` form field or the `?model=` query parameter. Admitted by the body's size."""
    try:
        engine_of(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        kind = "json" if media_type in JSON_TYPES else "npy" if media_type in NPY_TYPES else "png"
        cost = admission.score_cost(len(await request.body()), kind)  # the guard has read it already
        return await admitted(cost, lambda: _score(request))
    except Exception as e:
        return to_response(e)


def _score_pick(engine: Engine, name: str | None, version: str | None, png: bool) -> LoadedModel:
    return _image_model(engine, name, version) if png else _scoring_model(engine, name, version)


async def _score(request: Request) -> Response:
    try:
        model, x, wanted, _, _ = await samples_in(request, ScoreRequest, _score_pick)
        tracing.describe(model.name, model.card.version, len(x), "json")
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
    return images_only(_scoring_model(engine, name, version))


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
            # The routes that run the graphs stop their work when the client leaves (disconnect.py).
            Route("/sample", cancellable(sample, eager=False), methods=["POST"]),
            Route("/sample", cancellable(sample_get, eager=False), methods=["GET"]),
            Route("/interpolate", cancellable(interpolate), methods=["POST"]),
            Route("/models", models, methods=["GET"]),
            Route("/score", cancellable(score), methods=["POST"]),
            Route("/invert", cancellable(invert_routes.invert), methods=["POST"]),
            Route("/docs.json", docs, methods=["GET"]),
            *v2_routes.routes(),  # the Open Inference Protocol (service/v2)
            Route("/generate_dataset", dataset_routes.run_now, methods=["POST"]),
            Route("/generate_dataset/submit", dataset_routes.submit, methods=["POST"]),
            Route(dataset_routes.CANCEL_PATH, dataset_routes.cancel, methods=["PUT"]),
        ]
    )
