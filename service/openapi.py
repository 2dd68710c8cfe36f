"""The OpenAPI document at /docs.json: BentoML's, completed with the routes it does not know.

BentoML describes its own APIs (POST /sample, /interpolate, the dataset task) and probes. GET
/models and POST /score are plain Starlette routes (routes.py), so they are added here, with the
error shape every route really answers (errors.py: `detail` is a list, where BentoML's error
schemas say a string) and ganserve's own title, version and description in place of BentoML's
boilerplate. The Swagger UI at / reads this document.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version

from models.card import ModelCard

from .encoding import NPY_MEDIA_TYPE, PNG_MEDIA_TYPE
from .schemas import ScoreRequest

REF = "#/components/schemas/{model}"
DESCRIPTION = """Samples and realness scores from generative adversarial networks (Goodfellow et al.,
2014) trained by ganserve and exported to ONNX: G maps latent noise to samples, and D's realness
D(x) = sigmoid(logit) estimates the probability that x came from the data.

`POST /sample` draws samples (json, npy or a png grid), `POST /interpolate` walks between two
latents, `POST /score` gives D's realness of samples you send, `GET /models` lists the models with
their cards, and `/generate_dataset/*` writes sharded synthetic datasets as a background task.
Every refusal is JSON: `{"error": "<field>: <problem>", "detail": [{"loc": [...], "msg": ...}]}`.
"""

ERROR = {
    "type": "object", "title": "Error", "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "one line: the field at fault and the problem"},
        "detail": {"type": "array", "items": {
            "type": "object", "required": ["loc", "msg"],
            "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                           "msg": {"type": "string"}}}},
    },
}
SCORE_RESPONSE = {
    "type": "object", "title": "ScoreResponse", "required": ["model", "version", "n", "realness", "logit"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string", "description": "the first 12 hex digits of the generator's sha256"},
        "n": {"type": "integer", "minimum": 1},
        "realness": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                     "description": "D(x) = sigmoid(logit) per sample"},
        "logit": {"type": "array", "items": {"type": "number"}},
    },
}
MODELS_RESPONSE = {
    "type": "object", "title": "ModelsResponse", "required": ["default_model", "device", "limits", "models"],
    "properties": {
        "default_model": {"type": "string"},
        "device": {"type": "string", "description": "the provider chosen at start-up, and why"},
        "limits": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "max_n, max_draws_factor, max_body_bytes"},
        "models": {"type": "array", "items": {"type": "object", "required": ["name", "status"], "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "provider": {"type": "string", "description": "the onnxruntime provider really in use (ready models)"},
            "version": {"type": "string"},
            "card": {"$ref": REF.format(model="ModelCard")},
            "reason": {"type": "string", "description": "why the model is unavailable"},
        }}},
    },
}
BINARY = {"type": "string", "format": "binary"}


def _errors(*statuses: int) -> dict:
    names = {400: "Bad Request", 401: "Missing or wrong API token", 404: "Unknown model", 413: "Body too large",
             415: "Unsupported body type", 422: "Unusable input", 500: "Model or server fault",
             503: "Models loading or model unavailable"}
    ref = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    return {str(s): {"description": names[s], "content": ref} for s in statuses}


def extra_paths() -> dict:
    return {
        "/models": {"get": {
            "tags": ["Service APIs"],
            "summary": "The models, their cards and the request limits",
            "description": "Every model folder the server found: ready ones with their card and the onnxruntime "
                           "provider really in use, unavailable ones with the reason.",
            "responses": {"200": {"description": "The models", "content": {
                "application/json": {"schema": {"$ref": REF.format(model="ModelsResponse")}}}},
                **_errors(401, 503)},
        }},
        "/score": {"post": {
            "tags": ["Service APIs"],
            "summary": "D's realness of samples you send",
            "description": "Realness D(x) = sigmoid(logit) of each sample, from the model's discriminator. Send JSON "
                           f"(`samples`), an .npy array ({NPY_MEDIA_TYPE}), one PNG ({PNG_MEDIA_TYPE}), or PNG files "
                           "in a multipart form; every sample must have the model's sample shape.",
            "parameters": [{"name": "model", "in": "query", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
                            "description": "the model (with npy, png and forms; JSON bodies may name it instead)"}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": REF.format(model="ScoreRequest")}},
                NPY_MEDIA_TYPE: {"schema": BINARY},
                PNG_MEDIA_TYPE: {"schema": BINARY},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "files": {"type": "array", "items": BINARY, "description": "PNG images, one sample each"},
                    "model": {"type": "string"}}}},
            }},
            "responses": {"200": {"description": "One realness and logit per sample", "content": {
                "application/json": {"schema": {"$ref": REF.format(model="ScoreResponse")}}}},
                **_errors(400, 401, 404, 413, 415, 500, 503)},
        }},
    }


def _schemas() -> dict:
    """The JSON schemas the extra paths refer to, with their nested definitions, as components."""
    schemas = {"Error": ERROR, "ScoreResponse": SCORE_RESPONSE, "ModelsResponse": MODELS_RESPONSE}
    for model, mode in ((ScoreRequest, "validation"), (ModelCard, "serialization")):
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _version() -> str:
    try:
        return version("ganserve")
    except PackageNotFoundError:  # run from a checkout or a bento without the package installed
        return "dev"


def complete(bentoml_spec: dict) -> dict:
    """BentoML's document (as `Service.openapi_spec.asdict()` gives it) with ganserve's routes,
    error shape and description; the input is left unchanged."""
    spec = copy.deepcopy(bentoml_spec)
    # BentoML's info names BentoML's team as the contact and "None" as the version.
    spec["info"] = {"title": "ganserve", "version": _version(), "description": DESCRIPTION}
    spec.setdefault("paths", {}).update(extra_paths())
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):  # what those answers really hold
        if name in schemas:
            schemas[name]["properties"] = copy.deepcopy(ERROR["properties"])
    schemas.update(_schemas())
    return spec
