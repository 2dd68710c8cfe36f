"""The Open Inference Protocol's routes in /docs.json (service/http/openapi.py adds them): paths, and the
schemas of the protocol's JSON (its binary extension is a JSON header followed by raw tensors)."""

from __future__ import annotations

REF = "#/components/schemas/{model}"
TAGS = ["Open Inference Protocol (KServe V2)"]
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "`<model>.generator` or `<model>.discriminator`",
}
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the card's version (first 12 hex digits of the generator's sha256)",
}
TENSOR_META = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": ["FP32", "INT64"]},
        "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1: the batch axis"},
    },
}
PARAMETERS = {"type": "object", "additionalProperties": True}
SCHEMAS = {
    "V2Error": {
        "type": "object",
        "title": "V2Error",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": TENSOR_META},
            "outputs": {"type": "array", "items": TENSOR_META},
        },
    },
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": PARAMETERS,
            "inputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        **TENSOR_META["properties"],
                        "parameters": PARAMETERS,
                        "data": {"type": "array", "items": {}, "description": "row-major, flat or nested"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "parameters": PARAMETERS},
                },
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        **TENSOR_META["properties"],
                        "parameters": PARAMETERS,
                        "data": {"type": "array", "items": {"type": "number"}},
                    },
                },
            },
        },
    },
    "V2RepositoryIndex": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "state"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string"},
                "reason": {"type": "string"},
            },
        },
    },
}


def _json(schema: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}}}


def _errors(*statuses: int) -> dict:
    names = {
        400: "A malformed or mismatched request",
        404: "Unknown model or version",
        409: "The pinned version is no longer served",
        415: "Unsupported Content-Encoding",
        500: "Model fault",
        503: "Models still loading",
    }
    return {str(s): _json("V2Error", names[s]) for s in statuses}


def _op(op_id: str, summary: str, responses: dict, params: list | None = None, body: dict | None = None) -> dict:
    op = {"operationId": f"ganserve__v2_{op_id}", "tags": TAGS, "summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def paths() -> dict:
    infer_body = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": REF.format(model="V2InferRequest")}},
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "binary tensor extension: the JSON header (its length in the "
                    "Inference-Header-Content-Length header), then raw tensors",
                }
            },
        },
    }
    infer_ok = {
        "description": "The outputs; with binary outputs, the JSON header (its length in the "
        "Inference-Header-Content-Length header) then the raw tensors",
        "headers": {
            "Inference-Header-Content-Length": {"schema": {"type": "string"}},
            "X-Model-Version": {"schema": {"type": "string"}},
        },
        "content": {
            "application/json": {"schema": {"$ref": REF.format(model="V2InferResponse")}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    out = {
        "/v2": {
            "get": _op(
                "server_metadata",
                "Server metadata and the protocol extensions served",
                {"200": _json("V2ServerMetadata", "Server metadata")},
            )
        },
        "/v2/health/live": {"get": _op("live", "Liveness (open, no token)", {"200": {"description": "Live"}})},
        "/v2/health/ready": {
            "get": _op(
                "ready",
                "Readiness: every model loaded (open, no token)",
                {"200": {"description": "Ready"}, **_errors(503)},
            )
        },
        "/v2/repository/index": {
            "post": _op(
                "repository_index", "Every model folder and its state", {"200": _json("V2RepositoryIndex", "The index")}
            )
        },
    }
    for suffix, params in (("", [NAME]), ("/versions/{version}", [NAME, VERSION])):
        base, tail = f"/v2/models/{{name}}{suffix}", "_version" if suffix else ""
        out[base] = {
            "get": _op(
                f"model_metadata{tail}",
                "A model's inputs and outputs",
                {"200": _json("V2ModelMetadata", "Metadata"), **_errors(404, 409)},
                params,
            )
        }
        out[f"{base}/ready"] = {
            "get": _op(
                f"model_ready{tail}",
                "Whether the model (version) is served",
                {"200": {"description": "Ready"}, **_errors(404, 409)},
                params,
            )
        }
        out[f"{base}/infer"] = {
            "post": _op(
                f"infer{tail}",
                "Run the graph (JSON or binary tensors)",
                {"200": infer_ok, **_errors(400, 404, 409, 415, 500, 503)},
                params,
                infer_body,
            )
        }
    for action in ("load", "unload"):
        out[f"/v2/repository/models/{{name}}/{action}"] = {
            "post": _op(
                f"repository_{action}",
                f"{action.title()} a model (GANSERVE_MODEL_CONTROL=explicit)",
                {"200": {"description": "Done"}, **_errors(400, 404)},
                [{**NAME, "description": "the model's folder name"}],
            )
        }
    return out
