"""The OpenAPI document at /docs.json: BentoML's, completed with what BentoML does not know.

BentoML describes its own APIs (POST /sample, /interpolate, the dataset task) and probes, but not
what /sample and /interpolate answer (json, npy or a png grid, and their headers). GET /models
and POST /score are plain Starlette routes (routes.py), so they are added here. Every route gets
the error shape it really answers (the fixed schemas: openapi_schemas.py) (errors.py: `detail` is a list, where BentoML's error schemas
say a string), and the document gets ganserve's own title, version and description in place of
BentoML's boilerplate. The Swagger UI at / reads this document.
"""

from __future__ import annotations

import copy
import json
from importlib.metadata import PackageNotFoundError, version

from models.card import ModelCard
from service.core import formats
from service.core.encoding import NPY_MEDIA_TYPE, PNG_MEDIA_TYPE
from service.core.schemas import InvertRequest, SampleRequest, ScoreRequest
from service.http import caching
from service.http.middleware import BODY_METHODS, OPEN_PATHS
from service.http.openapi_schemas import (
    BINARY,
    DESCRIPTION,
    ERROR,
    INTERPOLATE_HEADERS,
    INTERPOLATE_RESPONSE,
    INVERT_RESPONSE,
    MODELS_RESPONSE,
    REF,
    SAMPLE_HEADERS,
    SAMPLE_RESPONSE,
    SCORE_RESPONSE,
)
from service.http.v2 import openapi as v2_openapi


def _errors(*statuses: int) -> dict:
    names = {
        400: "Bad Request",
        401: "Missing or wrong API token (when GANSERVE_API_TOKEN is set)",
        403: "The dataset task is off: GANSERVE_OUTPUT_DIR is not set",
        404: "Unknown model (or a version never served)",
        413: "Body over GANSERVE_MAX_BODY_BYTES",
        415: "Unsupported body type",
        422: "Nothing to answer with (no sample passed the filter, for a png), or (datasets) a dataset over "
        "the server's disk budget (the error gives its size)",
        409: "A pinned model version no longer served; (datasets) the dataset is being written by another "
        "job, its folder holds a different dataset, the server runs GANSERVE_DATASET_JOBS jobs already, "
        "or (cancel) the task has ended",
        500: "Model or server fault",
        503: "Overloaded (admission control: the worker's budget stayed full for GANSERVE_ADMISSION_WAIT_S, "
        "or its queue is full; `Retry-After` says when to retry), models loading, or model unavailable",
        504: "No answer begun within the request timeout (120 s)",
    }
    ref = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    answers = {str(s): {"description": names[s], "content": ref} for s in statuses}
    if 503 in statuses:  # admission.py's refusals say when to come back
        answers["503"] = {
            **answers["503"],
            "headers": {
                "Retry-After": {
                    "description": "seconds to wait before retrying (on admission control's refusals)",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        }
    return answers


def extra_paths() -> dict:
    return {
        "/models": {
            "get": {
                "operationId": "ganserve__models",
                "tags": ["Service APIs"],
                "summary": "The models, their cards and the request limits",
                "description": "Every model folder the server found: ready ones with their card and the onnxruntime "
                "provider really in use, unavailable ones with the reason.",
                "responses": {
                    "200": {
                        "description": "The models",
                        "content": {"application/json": {"schema": {"$ref": REF.format(model="ModelsResponse")}}},
                    },
                    **_errors(401, 503),
                },
            }
        },
        "/score": {
            "post": {
                "operationId": "ganserve__score",
                "tags": ["Service APIs"],
                "summary": "D's realness of samples you send",
                "description": "Realness D(x) = sigmoid(logit) of each sample, from the model's discriminator. Send JSON "
                f"(`samples`), an .npy array ({NPY_MEDIA_TYPE}), one PNG ({PNG_MEDIA_TYPE}), or PNG files "
                "in a multipart form; every sample must have the model's sample shape.",
                "parameters": [
                    {
                        "name": "model",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                        "description": "the model (with npy, png and forms; JSON bodies may name it instead)",
                    },
                    {
                        "name": "version",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                        "description": "pin the model's version: 409 when it is no longer served",
                    },
                    {
                        "name": "labels",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "a conditional model (npy, png and forms; JSON bodies send `labels`): "
                        "one class (index or name), n classes separated by commas, or "
                        "`balanced`; D(x | c) scores each sample under its class",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="ScoreRequest")}},
                        NPY_MEDIA_TYPE: {"schema": BINARY},
                        PNG_MEDIA_TYPE: {"schema": BINARY},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "files": {
                                        "type": "array",
                                        "items": BINARY,
                                        "description": "PNG images, one sample each",
                                    },
                                    "model": {"type": "string"},
                                },
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "One realness and logit per sample",
                        "content": {"application/json": {"schema": {"$ref": REF.format(model="ScoreResponse")}}},
                    },
                    **_errors(400, 401, 404, 409, 413, 415, 500, 503),
                },
            }
        },
    }


def _invert_path() -> dict:
    """POST /invert: /score's body forms and query parameters, and its own."""
    score = extra_paths()["/score"]["post"]
    params = score["parameters"] + [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": what}
        for name, schema, what in (
            ("format", {"type": "string", "enum": list(formats.NAMES)}, "npy and png bodies: the answer's format"),
            ("refine", {"type": "integer", "minimum": 0, "maximum": 256}, "candidates per image of the search"),
            ("seed", {"type": "integer", "minimum": 0}, "the search's seed"),
            ("scores", {"type": "boolean"}, "json: D's realness of each reconstruction"),
            ("resize", {"type": "boolean"}, "PNG bodies: resize another size to the model's (Lanczos), and say so"),
        )
    ]
    content = dict(score["requestBody"]["content"])
    content["application/json"] = {"schema": {"$ref": REF.format(model="InvertRequest")}}
    return {
        "post": {
            "operationId": "ganserve__invert",
            "tags": ["Service APIs"],
            "summary": "Images back into latent space: E's latents, G's reconstructions",
            "description": "For a model with an encoder: E's latent (z, or w for a style-based model) of each "
            "image, G's reconstruction and the error of each; `refine` searches through G around E's guess.",
            "parameters": params,
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": {
                    "description": "json: latents, errors and reconstructions; npy / png: the reconstructions",
                    "headers": {
                        "X-Error": {"schema": {"type": "string"}, "description": "npy and png: each error"},
                        "X-Resized": {"schema": {"type": "string"}, "description": "with resize: what was resized"},
                    },
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="InvertResponse")}},
                        NPY_MEDIA_TYPE: {"schema": BINARY},
                        PNG_MEDIA_TYPE: {"schema": BINARY},
                    },
                },
                **_errors(400, 401, 404, 409, 413, 415, 500, 503),
            },
        }
    }


def _add_errors(operation: dict, *statuses: int | None) -> None:
    """Document these refusals on an operation, keeping any it already documents (None: skipped)."""
    responses = operation.setdefault("responses", {})
    for status, answer in _errors(*(s for s in statuses if s is not None)).items():
        responses.setdefault(status, answer)


def _sample_get(post: dict) -> dict:
    """GET /sample: POST /sample's scalar fields as query parameters, cacheable (http/caching.py)."""
    props = SampleRequest.model_json_schema()["properties"]
    parameters = []
    for name in caching.QUERY_FIELDS:  # every field of the schema but the body-only ones
        schema = dict(props[name])
        if name == "labels":  # one class, a policy, or a comma-separated list in a query
            schema = {"type": "string", "maxLength": 4000}  # URLs past ~8 KB are refused by proxies
        parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    parameters.append(
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 1000},
            "description": "the ETag of an earlier answer: 304 when it still is the answer",
        }
    )
    return {
        "operationId": "ganserve__sample_get",
        "tags": post.get("tags", ["Service APIs"]),
        "summary": "Samples of a seed, as a cacheable GET",
        "description": (
            f"POST /sample's scalar fields as query parameters ({', '.join(caching.BODY_ONLY)} need POST). An answer "
            "with fixed latents (a seed) carries a strong ETag and a Cache-Control; If-None-Match with that "
            "ETag answers 304 before anything runs."
        ),
        "parameters": parameters,
        "responses": {
            "304": {"description": "Not modified: the answer is the one whose ETag was sent"},
            **_errors(400, 404),
        },
    }


def _samples_answer(schema: str, headers: dict) -> dict:
    """What /sample and /interpolate answer: BentoML documents an empty JSON schema only."""
    # One entry per answer format, from the format table (core/formats.py): a format whose fields
    # go in the body is JSON with the answer's schema, the others are bytes with the fields as headers.
    ways = ", ".join(
        f"{f.name} ({'with the fields below' if f.fields_in_body else 'the fields as headers'})"
        for f in formats.FORMATS.values()
    )
    return {
        "description": f"The samples, as `format` asks: {ways}",
        "headers": headers,
        "content": {
            f.media_type: {"schema": {"$ref": REF.format(model=schema)} if f.fields_in_body else BINARY}
            for f in formats.FORMATS.values()
        },
    }


def _schemas() -> dict:
    """The JSON schemas the extra paths refer to, with their nested definitions, as components."""
    schemas = {
        "Error": ERROR,
        "ScoreResponse": SCORE_RESPONSE,
        "ModelsResponse": MODELS_RESPONSE,
        "SampleResponse": SAMPLE_RESPONSE,
        "InterpolateResponse": INTERPOLATE_RESPONSE,
        "InvertResponse": INVERT_RESPONSE,
    }
    for model, mode in ((ScoreRequest, "validation"), (InvertRequest, "validation"), (ModelCard, "serialization")):
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def server_version() -> str:
    try:
        return version("ganserve")
    except PackageNotFoundError:  # run from a checkout or a bento without the package installed
        return "dev"


def _unique_operation_ids(paths: dict) -> None:
    """BentoML 1.4.40 gives the dataset task's cancel the same operationId as its retry; OpenAPI
    requires them unique (client generators name methods by them). Later duplicates get one
    made from their path and method."""
    seen = set()
    for path, operations in paths.items():
        for method, operation in operations.items():
            op_id = operation.get("operationId")
            if op_id is not None and op_id in seen:
                operation["operationId"] = op_id = f"ganserve__{path.strip('/').replace('/', '_')}_{method}"
            seen.add(op_id)


def complete(bentoml_spec: dict, token_required: bool = False) -> dict:
    """BentoML's document (as `Service.openapi_spec.asdict()` gives it) with ganserve's routes,
    error shape and description; the input is left unchanged. `token_required`
    (GANSERVE_API_TOKEN is set): the guarded operations declare bearer authentication, which
    gives the UI at / its "Authorize" button."""
    # Through JSON and back: a copy, with the keys as a client sees them (BentoML's dict keys its
    # responses by int status, which JSON turns into strings).
    spec = json.loads(json.dumps(bentoml_spec))
    # BentoML's info names BentoML's team as the contact and "None" as the version.
    spec["info"] = {"title": "ganserve", "version": server_version(), "description": DESCRIPTION}
    # The document says 3.0.2, but BentoML's own schemas and pydantic's use 3.1 (JSON Schema
    # 2020-12: "type": "null", const, prefixItems); Swagger UI reads 3.1.
    spec["openapi"] = "3.1.0"
    spec.setdefault("paths", {}).update(extra_paths())
    spec["paths"]["/invert"] = _invert_path()
    if "post" in spec["paths"].get("/sample", {}):
        spec["paths"]["/sample"]["get"] = _sample_get(spec["paths"]["/sample"]["post"])
    spec["paths"].update(v2_openapi.paths())
    for path, schema, headers in (
        ("/sample", "SampleResponse", SAMPLE_HEADERS),
        ("/interpolate", "InterpolateResponse", INTERPOLATE_HEADERS),
    ):
        for method in ("post", "get"):
            if method in spec["paths"].get(path, {}):
                operation = spec["paths"][path][method]
                operation.setdefault("responses", {})["200"] = _samples_answer(schema, headers)
                _add_errors(operation, 422 if path == "/sample" else None, 409, 503)
    for path, method in (
        ("/generate_dataset", "post"),
        ("/generate_dataset/get", "get"),
        ("/generate_dataset/submit", "post"),
    ):  # datasets/task.py, datasets/routes.py
        if method in spec["paths"].get(path, {}):
            _add_errors(spec["paths"][path][method], 403, 409, 422)
    cancel = spec["paths"].get("/generate_dataset/cancel", {}).get("put")
    if cancel is not None:  # served by datasets/routes.py, not BentoML ("not supported" there)
        cancel["description"] = (
            "Stops the dataset job after its current block: its complete shards stay valid, "
            "submitting the same request again resumes it, and its status says `canceled`."
        )
        _add_errors(cancel, 409)
    _unique_operation_ids(spec["paths"])
    for path, operations in spec["paths"].items():  # what GuardMiddleware answers before any route
        if path in OPEN_PATHS:
            continue
        for method, operation in operations.items():
            _add_errors(operation, 401, 413 if method.upper() in BODY_METHODS else None, 504)  # 504: timeout.py
            if token_required:
                operation["security"] = [{"bearer": []}]
    if token_required:
        spec.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "GANSERVE_API_TOKEN"}
        }
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):  # what those answers really hold
        if name in schemas:
            schemas[name]["properties"] = copy.deepcopy(ERROR["properties"])
    schemas.update(_schemas())
    schemas.update(v2_openapi.SCHEMAS)
    return spec
