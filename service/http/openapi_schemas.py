"""The fixed parts of the OpenAPI document at /docs.json (http/openapi.py assembles it): the error
shape every route answers, the bodies of GET /models and POST /score, what /sample and /interpolate
answer in JSON, and the headers npy and png answers carry. Schemas only: nothing here runs.
"""

from __future__ import annotations

REF = "#/components/schemas/{model}"
DESCRIPTION = """Samples and realness scores from generative adversarial networks (Goodfellow et al.,
2014) trained by ganserve and exported to ONNX: G maps latent noise to samples, and D's realness
D(x) = sigmoid(logit) estimates the probability that x came from the data.

`POST /sample` draws samples (json, npy or a png grid), `POST /interpolate` walks between two
latents, `POST /score` gives D's realness of samples you send, `GET /models` lists the models with
their cards, and `/generate_dataset/*` writes sharded synthetic datasets as a background task.
`/v2/...` speaks the Open Inference Protocol (KServe V2, Triton's HTTP API with binary tensors):
each model's generator and discriminator are V2 models `<model>.generator`, `<model>.discriminator`.
Every refusal of ganserve's own routes is JSON: `{"error": "<field>: <problem>", "detail": [{"loc": [...], "msg": ...}]}`.
"""

ERROR = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "one line: the field at fault and the problem"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}
LABELS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "description": "a conditional model's class index of each sample (GET /models lists the names)",
}
SCORE_RESPONSE = {
    "type": "object",
    "title": "ScoreResponse",
    "additionalProperties": False,
    "required": ["model", "version", "n", "realness", "logit"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string", "description": "the first 12 hex digits of the generator's sha256"},
        "n": {"type": "integer", "minimum": 1},
        "realness": {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "description": "D(x) = sigmoid(logit) per sample",
        },
        "logit": {"type": "array", "items": {"type": "number"}},
        "labels": {**LABELS, "description": "a conditional model: the classes D(x | c) scored under"},
    },
}
MODELS_RESPONSE = {
    "type": "object",
    "title": "ModelsResponse",
    "additionalProperties": False,
    "required": ["default_model", "device", "limits", "models"],
    "properties": {
        "default_model": {"type": "string"},
        "device": {"type": "string", "description": "the provider chosen at start-up, and why"},
        "layout": {"type": "string", "description": "workers and graph threads per worker, and why"},
        "limits": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "max_n, max_draws_factor, max_body_bytes",
        },
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "status"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": ["ready", "unavailable"]},
                    "provider": {
                        "type": "string",
                        "description": "the provider really in use (ready models): "
                        "an onnxruntime provider, or OpenVINO:CPU",
                    },
                    "backend": {
                        "type": "string",
                        "enum": ["onnxruntime", "openvino"],
                        "description": "the engine running the graphs",
                    },
                    "backend_reason": {"type": "string", "description": "why that engine (auto: the measured figures)"},
                    "version": {"type": "string"},
                    "realness": {
                        "type": "boolean",
                        "description": "whether the model has a discriminator: without one, "
                        "/score, scores, min_realness and drs are refused (400)",
                    },
                    "classes": {
                        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                        "description": "a conditional model's class names, by index (null: unconditional)",
                    },
                    "directions": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "the model's editing directions (/sample's edit), by name",
                    },
                    "encoder": {
                        "type": "boolean",
                        "description": "whether POST /invert can run (the model has an encoder)",
                    },
                    "style": {
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {"w_dim": {"type": "integer"}, "num_ws": {"type": "integer"}},
                            },
                            {"type": "null"},
                        ],
                        "description": "a style-based model's w space (truncation_psi, mix, w); null: a single graph",
                    },
                    "card": {"$ref": REF.format(model="ModelCard")},
                    "reason": {"type": "string", "description": "why the model is unavailable"},
                    "refused": {
                        "type": "string",
                        "description": "(model control) why the model's changed folder was "
                        "not swapped in; the version listed keeps serving",
                    },
                },
            },
        },
    },
}
BINARY = {"type": "string", "format": "binary"}
SEED = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
ANSWERED = {
    "model": {"type": "string"},
    "version": {"type": "string", "description": "the first 12 hex digits of the generator's sha256"},
    "shape": {"type": "array", "items": {"type": "integer"}, "description": "of `samples`: n, then the sample shape"},
    "samples": {
        "type": "array",
        "items": {},
        "description": "nested lists of numbers of shape `shape`: float32 values, or 0..255 integers with dtype uint8",
    },
    "dtype": {
        "type": "string",
        "enum": ["float32", "uint8"],
        "description": "what `samples` holds (the request's dtype)",
    },
    "realness": {
        "type": "array",
        "items": {"type": "number", "minimum": 0, "maximum": 1},
        "description": "with `scores`: D(x) per sample",
    },
    "logit": {"type": "array", "items": {"type": "number"}, "description": "with `scores`: D's logit per sample"},
    "labels": LABELS,
}
# A style-based model's w-space answer fields (core/style.py).
W_SPACE = {
    "truncation_psi": {"type": "number", "description": "style-based models: the psi applied in w"},
    "truncation_cutoff": {"type": "integer", "description": "style-based models: the layers psi applied to"},
}
SAMPLE_W_SPACE = {
    **W_SPACE,
    "mix_seed": {**SEED, "description": "style-based models: the seed whose styles were mixed in"},
    "mix_from_layer": {"type": "integer", "description": "style-based models: the first layer of the mixed styles"},
    "w": {
        "type": "array",
        "items": {},
        "description": "with return_w (style-based models): the ws that drew each sample, (n, num_ws, w_dim)",
    },
}
SAMPLE_RESPONSE = {
    "type": "object",
    "title": "SampleResponse",
    "additionalProperties": False,
    "required": ["model", "version", "shape", "samples"],
    "properties": {
        **ANSWERED,
        "seed": {"anyOf": [SEED, {"type": "null"}], "description": "the seed used (null with explicit latents)"},
        "requested": {"type": "integer", "description": "with a filter: the n asked for"},
        "drawn": {"type": "integer", "description": "with a filter: samples drawn in all"},
        "accepted": {"type": "integer", "description": "with a filter: samples that passed it"},
        "exhausted": {
            "type": "boolean",
            "description": "with a filter: true when the draw bound "
            "(n x GANSERVE_MAX_DRAWS_FACTOR) ran out before n samples passed",
        },
        "drs_gamma": {
            "type": "number",
            "description": "with drs: the gamma used (the request's, else the model card's realness.drs_gamma, else 0)",
        },
        **SAMPLE_W_SPACE,
        "edit": {
            "type": "array",
            "items": {"type": "string"},
            "description": "with edit: direction:amount of each move",
        },
    },
}
INTERPOLATE_RESPONSE = {
    "type": "object",
    "title": "InterpolateResponse",
    "additionalProperties": False,
    "required": ["model", "version", "shape", "samples"],
    "properties": {
        **ANSWERED,
        "seeds": {
            "anyOf": [{"type": "array", "items": SEED, "minItems": 2, "maxItems": 2}, {"type": "null"}],
            "description": "the two seeds (null with explicit latents)",
        },
        "method": {"type": "string", "enum": ["slerp", "lerp"]},
        "space": {"type": "string", "enum": ["w"], "description": "style-based models: the walk is in w"},
        "seed": {**SEED, "description": "with along: the seed the walk starts from"},
        "along": {"type": "string", "description": "with along: the direction walked"},
        "amounts": {
            "type": "array",
            "items": {"type": "number"},
            "description": "with along: its first and last amount",
        },
        **W_SPACE,
    },
}
INVERT_RESPONSE = {
    "type": "object",
    "title": "InvertResponse",
    "additionalProperties": False,
    "required": ["model", "version", "space", "n", "latents", "error", "reconstructions"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string"},
        "space": {
            "type": "string",
            "enum": ["z", "w"],
            "description": "what the latents are: z, or a style-based model's w",
        },
        "n": {"type": "integer"},
        "latents": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "error": {"type": "array", "items": {"type": "number"}, "description": "mean squared error per value of each"},
        "reconstructions": {"type": "array", "items": {}, "description": "G's sample of each latent"},
        "labels": LABELS,
        "resized": {
            "type": "array",
            "items": {"type": "string"},
            "description": "with resize: each PNG resized to the model's size, as 'body: 56x56 -> 28x28 (Lanczos)'",
        },
        "refine": {
            "type": "object",
            "description": "with refine: candidates drawn per image and the error of E's guess alone",
            "properties": {
                "candidates": {"type": "integer"},
                "error_of_encoder": {"type": "array", "items": {"type": "number"}},
            },
        },
        "realness": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "logit": {"type": "array", "items": {"type": "number"}},
    },
}
STRING_HEADER = {"schema": {"type": "string"}}
# npy and png answers carry the JSON answer's fields as headers (handlers.respond).
COMMON_HEADERS = {
    "X-Model": STRING_HEADER,
    "X-Model-Version": STRING_HEADER,
    "X-Dtype": {
        "schema": {"type": "string", "enum": ["float32", "uint8"]},
        "description": "npy: the array's dtype (the request's dtype)",
    },
    "X-Shape": {"schema": {"type": "string"}, "description": "comma-separated, e.g. 16,1,28,28"},
    "X-Labels": {
        "schema": {"type": "string"},
        "description": "a conditional model: the class index of each sample, comma-separated",
    },
}
SAMPLE_HEADERS = {
    **COMMON_HEADERS,
    "X-Seed": STRING_HEADER,
    "X-Requested": {"schema": {"type": "string"}, "description": "with a filter"},
    "X-Drawn": {"schema": {"type": "string"}, "description": "with a filter"},
    "X-Accepted": {"schema": {"type": "string"}, "description": "with a filter"},
    "X-Exhausted": {
        "schema": {"type": "string", "enum": ["true", "false"]},
        "description": "with a filter: true when the draw bound ran out before n passed",
    },
    "X-Drs-Gamma": {"schema": {"type": "string"}, "description": "with drs: the gamma used"},
    "X-Truncation-Psi": {"schema": {"type": "string"}, "description": "style-based models: the psi applied"},
    "X-Truncation-Cutoff": {
        "schema": {"type": "string"},
        "description": "style-based models: the layers it applied to",
    },
    "X-Mix-Seed": {"schema": {"type": "string"}, "description": "style-based models: the seed mixed in"},
    "X-Mix-From-Layer": {"schema": {"type": "string"}, "description": "style-based models: its first layer"},
    "X-Edit": {"schema": {"type": "string"}, "description": "with edit: direction:amount of each move"},
}
INTERPOLATE_HEADERS = {
    **COMMON_HEADERS,
    "X-Seeds": {"schema": {"type": "string"}, "description": "comma-separated"},
    "X-Method": STRING_HEADER,
    "X-Space": {"schema": {"type": "string"}, "description": "style-based models: w"},
    "X-Seed": {"schema": {"type": "string"}, "description": "with along: the seed the walk starts from"},
    "X-Along": {"schema": {"type": "string"}, "description": "with along: the direction walked"},
    "X-Amounts": {"schema": {"type": "string"}, "description": "with along: its first and last amount"},
    "X-Truncation-Psi": {"schema": {"type": "string"}, "description": "style-based models: the psi applied"},
}
