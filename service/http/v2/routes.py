"""The Open Inference Protocol's routes, served by the same mounted Starlette app as /sample
(routes.py) and through the same engine and micro-batchers: an infer of `<model>.generator` with
the latents /sample drew for a seed answers /sample's samples for that seed.

Health (`/v2/health/live`, `/v2/health/ready`) is open like /livez and /readyz; everything else
under /v2 is behind the token (middleware.py).
"""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from models.card import CARD_FILE
from service.core import formats, versions
from service.core.schemas import MAX_N
from service.http import context, disconnect, errors
from service.http.admitted import Charge, admitted_raising
from service.http.context import engine_of
from service.http.disconnect import cancellable
from service.http.openapi import server_version
from service.http.v2.tensors import DATATYPES, TensorMeta, V2Error, decompressed, encode_response, parse_request
from service.runtime import admission, tracing
from service.runtime.engine import UnknownModel, model_folders
from service.runtime.metrics import count_samples
from service.runtime.model import LoadedModel
from service.settings import get_settings

# The graphs served as V2 models (a style-based model's mapping and synthesis in place of a
# generator); a card's ratio.onnx (the D trained with G, for DRS) is /sample's filter, not a model.
ROLES = ("generator", "mapping", "synthesis", "discriminator", "encoder")
PLATFORM = "onnxruntime_onnx"  # Triton's name for what runs the graphs
EXTENSIONS = ["binary_tensor_data", "model_repository"]


def v2_name(model: str, role: str) -> str:
    """`mnist` + `generator` -> `mnist.generator`; card names never hold a dot (NAME_PATTERN)."""
    return f"{model}.{role}"


def error_answer(e: Exception) -> Response:
    """The protocol's error answer: {"error": "..."} and a 4xx (5xx only for a fault of the server),
    the status from the one table every route reads (http/errors.py, its V2 column)."""
    if isinstance(e, V2Error):
        return JSONResponse({"error": e.message}, status_code=e.status)
    status, _, message, headers = errors.status_of(e, protocol="v2")
    return JSONResponse({"error": message}, status_code=status, headers=headers)  # Retry-After on a 503


def _resolve(request: Request) -> tuple[LoadedModel, str]:
    """The served model and role the path names (with its pinned version, if any)."""
    name = request.path_params["name"]
    base, dot, role = name.rpartition(".")
    engine = engine_of(request)
    try:
        if not dot or role not in ROLES:
            raise UnknownModel(name, [])
        model = versions.pinned(engine, base, request.path_params.get("version"))
    except UnknownModel:  # listed by their V2 names, not their folders'
        known = ", ".join(v2_name(m, r) for m, lm in sorted(engine.models.items()) for r in lm.card.roles if r in ROLES)
        raise V2Error(f"unknown model {name!r}; models here: {known or 'none'}", 404) from None
    if role not in model.card.roles:
        why = "a generator-only model" if role == "discriminator" else f"it has {', '.join(model.card.sampling_roles)}"
        raise V2Error(f"unknown model {name!r}: {base} has no {role} ({why})", 404)
    return model, role


def io_meta(model: LoadedModel, role: str) -> tuple[list[TensorMeta], list[TensorMeta]]:
    """A graph's inputs and outputs from its card, the batch axis (a named dim) as -1."""
    sig = model.card.expected_signature(role)

    def metas(specs) -> list[TensorMeta]:
        return [
            TensorMeta(s.name, DATATYPES[s.dtype], tuple(d if isinstance(d, int) else -1 for d in s.shape))
            for s in specs
        ]

    # The first output only: what infer answers (the engine runs a graph for its first output).
    return metas(sig.inputs), metas(sig.outputs[:1])


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "ganserve", "version": server_version(), "extensions": EXTENSIONS})


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    engine = engine_of(request, required=False)
    if engine is None or not engine.models:
        return JSONResponse({"ready": False, "error": "models are still loading"}, status_code=503)
    return JSONResponse({"ready": True})


async def model_metadata(request: Request) -> Response:
    try:
        model, role = _resolve(request)
    except Exception as e:
        return error_answer(e)
    inputs, outputs = io_meta(model, role)
    return JSONResponse(
        {
            "name": v2_name(model.name, role),
            "versions": [model.card.version],
            "platform": PLATFORM,
            "inputs": [m.as_json() for m in inputs],
            "outputs": [m.as_json() for m in outputs],
        }
    )


async def model_ready(request: Request) -> Response:
    try:
        model, role = _resolve(request)
    except Exception as e:
        return error_answer(e)
    return JSONResponse({"name": v2_name(model.name, role), "version": model.card.version, "ready": True})


async def infer(request: Request) -> Response:
    """Admitted like every route that runs a graph (runtime/admission.py): parsing is charged as a
    /score of the body, and once parsed, the charge is raised by the answer (`answer_cost`)."""
    try:
        model, role = _resolve(request)
        inputs, outputs = io_meta(model, role)
        body = decompressed(
            await request.body(), request.headers.get("content-encoding"), get_settings().max_body_bytes
        )
        binary = request.headers.get("inference-header-content-length") is not None
        cost = admission.score_cost(len(body), "npy" if binary else "json")
        return await admitted_raising(cost, lambda charge: _infer(request, model, role, inputs, outputs, body, charge))
    except Exception as e:
        return error_answer(e)


def answer_cost(n: int, inputs: list[TensorMeta], outputs: list[TensorMeta], wanted: list[tuple[str, bool]]) -> int:
    """Admission's charge of answering n rows beside the parsed body: the graph's inputs and its
    output as a /sample of n answered in npy (binary outputs) or json (any output inline)."""
    per_row_in = sum(math.prod(m.shape[1:]) for m in inputs)
    per_row_out = math.prod(outputs[0].shape[1:])
    spec = formats.get("npy" if all(as_binary for _, as_binary in wanted) else "json")
    return admission.sample_cost(n, per_row_in, per_row_out, spec.peak_bytes_per_value, 1, spec.fixed_peak_bytes)


async def _infer(
    request: Request,
    model: LoadedModel,
    role: str,
    inputs: list[TensorMeta],
    outputs: list[TensorMeta],
    body: bytes,
    charge: Charge,
) -> Response:
    try:
        args = (body, request.headers.get("inference-header-content-length"), inputs, outputs, MAX_N)
        req = (
            parse_request(*args)
            if len(body) <= context.LOOP_MAX_BODY_BYTES
            else await run_in_threadpool(parse_request, *args)
        )
        n = len(req.inputs[inputs[0].name])
        extra = answer_cost(n, inputs, outputs, req.outputs)
        disconnect.watch(request.scope, charge.cost + extra)  # stopped if its client leaves, where that pays
        await charge.raise_by(extra)
        if tracing.on():
            tracing.describe(f"{model.name}.{role}", model.card.version, n, "v2")
        results = await _run(model, role, req.inputs, inputs, outputs)
        name = v2_name(model.name, role)
        args = (name, model.card.version, req.id, results, {m.name: m for m in outputs}, req.outputs)
        with tracing.phase("encode"):
            content, headers = (
                encode_response(*args)
                if len(body) <= context.LOOP_MAX_BODY_BYTES
                else await run_in_threadpool(encode_response, *args)
            )
    except Exception as e:
        return error_answer(e)
    headers["X-Model-Version"] = model.card.version
    return Response(content, headers=headers)


async def _run(
    model: LoadedModel, role: str, arrays: dict, inputs: list[TensorMeta], outputs: list[TensorMeta]
) -> dict:
    """The graph through the engine's micro-batchers, as /sample and /score run it."""
    first = arrays[inputs[0].name]
    n = len(first)
    c = arrays.get(model.card.condition.input) if model.card.condition is not None else None
    try:
        if role == "generator":
            out = await model.generate_async(first.reshape(n, model.card.latent.dim), c)  # (n, *sample_shape)
            count_samples(model.name, n)
        elif role == "mapping":  # a style-based model's graphs, run apart as their callers compose them
            out = await run_in_threadpool(model.map_w, first.reshape(n, model.card.latent.dim), c)  # (n, w_dim)
        elif role == "synthesis":
            out = await run_in_threadpool(model.synthesize, first)  # (n, *sample_shape)
            count_samples(model.name, n)
        elif role == "encoder":  # learned inference: x [, c] -> z (or w)
            out = await run_in_threadpool(model.encode, first, c)
        else:
            out = (await model.logits_async(first, c)).reshape(n, 1)  # (n, 1) logits, as the graph gives them
    except ValueError as e:  # class indices out of range (engine._classes)
        raise V2Error(f"{model.card.condition.input if c is not None else inputs[0].name}: {e}") from None
    return {outputs[0].name: out}


async def repository_index(request: Request) -> Response:
    """Every model folder with its state (Triton's repository extension): READY with the version
    served, or UNAVAILABLE with the reason; names are folder names, as load and unload take them."""
    try:
        engine = engine_of(request)
    except V2Error as e:
        return error_answer(e)
    models, unavailable = engine.models, engine.unavailable  # one read of each (registry.py replaces them)
    index = [{"name": name, "version": m.card.version, "state": "READY"} for name, m in models.items()]
    index += [{"name": name, "state": "UNAVAILABLE", "reason": reason} for name, reason in unavailable.items()]
    listed = set(models) | set(unavailable)
    index += [
        {"name": f.name, "state": "UNAVAILABLE", "reason": "not loaded"}
        for f in model_folders(engine.models_dir)
        if f.name not in listed and (f / CARD_FILE).is_file()
    ]
    return JSONResponse(sorted(index, key=lambda entry: entry["name"]))


async def repository_control(request: Request) -> Response:
    """POST /v2/repository/models/{name}/load|unload (GANSERVE_MODEL_CONTROL=explicit): this
    worker applies it (a load verifies the folder first: in a worker thread, it runs the graphs),
    and the others follow within the poll interval (registry.py)."""
    from service.runtime.registry import ControlError

    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        return error_answer(V2Error("models are still loading", 503))
    action = request.url.path.rsplit("/", 1)[-1]
    try:
        state = await run_in_threadpool(registry.request, action, request.path_params["name"])
    except ControlError as e:
        return error_answer(V2Error(str(e), e.status))
    return JSONResponse(state)


async def not_found(request: Request) -> Response:
    return JSONResponse(
        {
            "error": f"no route {request.method} {request.url.path} in this server's Open Inference "
            "Protocol (see GET /docs.json)"
        },
        status_code=404,
    )


def routes() -> list[Route]:
    """Every form with and without `/versions/{version}`."""
    table = [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/repository/models/{name}/load", repository_control, methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", repository_control, methods=["POST"]),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        table += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", cancellable(infer, eager=False), methods=["POST"]),
        ]
    # Last: any other path under /v2 gets the protocol's error answer rather than BentoML's 404 page.
    return table + [Route("/v2/{rest:path}", not_found)]
