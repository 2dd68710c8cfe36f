"""The samples a request sends to be judged or inverted (/score, /invert), in every form the API
takes: JSON `samples`, an .npy body, one PNG body, or PNG files in a multipart form. Each form is
decoded only after its model was chosen and checked, and every bad body is a 4xx naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from service.core import encoding, labels
from service.core.problems import RequestError
from service.core.schemas import MAX_N
from service.http.context import engine_of
from service.runtime.model import LoadedModel

T = TypeVar("T", bound=BaseModel)

JSON_TYPES = {"application/json", ""}
NPY_TYPES = {encoding.NPY_MEDIA_TYPE, "application/octet-stream"}
FORM_TYPE = "application/x-www-form-urlencoded"  # a form without files: answered "no PNG file"


def check_shape(model: LoadedModel, x: np.ndarray, field: str) -> np.ndarray:
    """x must be (n, *sample_shape) with 1 <= n <= max n."""
    shape = tuple(model.card.sample.shape)
    if x.ndim != 1 + len(shape) or x.shape[1:] != shape:
        raise RequestError(
            field, f"must have shape (n, {', '.join(map(str, shape))}) for {model.name}, got {tuple(x.shape)}"
        )
    if not 1 <= len(x) <= MAX_N:
        raise RequestError(field, f"must hold 1 to {MAX_N} samples, got {len(x)}")
    return x


async def png_parts(request: Request, model_name: str | None) -> tuple[str | None, list[tuple[str, bytes]]]:
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


class Samples(NamedTuple):
    model: LoadedModel
    x: np.ndarray  # (n, *sample_shape)
    wanted: object  # the labels asked for (labels.from_query or the JSON request's)
    req: BaseModel | None  # the JSON request, None for the other forms
    resized: list[str]  # what was resized from what, where the caller asked for it


async def samples_in(
    request: Request, schema: type[T], pick: Callable[..., LoadedModel], resize: bool = False
) -> Samples:
    """The samples a /score or /invert request sends, in any of its forms (JSON `samples`, an .npy
    body, one PNG body, PNG files in a form). `pick(engine, name, version, png)` chooses and checks
    the model before the body is decoded. With `resize` (asked by the caller), a PNG of another size
    is resized to the model's and said so; the arrays of JSON and .npy bodies never are."""
    engine = engine_of(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    model_name = request.query_params.get("model")
    version = request.query_params.get("version")  # a pinned version (versions.py), as /sample's `version`
    wanted = labels.from_query(request.query_params.get("labels"))  # the classes of npy and png bodies
    req, pngs = None, []
    if resize and not (media_type.startswith("multipart/") or media_type in (FORM_TYPE, encoding.PNG_MEDIA_TYPE)):
        raise RequestError("resize", "resizes PNG images only; JSON and .npy samples must have the model's shape")
    if media_type.startswith("multipart/") or media_type == FORM_TYPE:
        model_name, parts = await png_parts(request, model_name)
        model = pick(engine, model_name, version, True)
        pngs = [_png(model, b, f, resize) for f, b in parts]
        x = np.stack([p[0] for p in pngs])
    else:
        body = await request.body()
        if media_type in JSON_TYPES:
            req = schema.model_validate_json(body)
            model = pick(engine, req.model or model_name, req.version or version, False)
            x = encoding.json_array(req.samples, "samples")
            wanted = req.labels if req.labels is not None else wanted
        elif media_type in NPY_TYPES:
            model = pick(engine, model_name, version, False)
            x = encoding.npy_array(body, "body")
        elif media_type == encoding.PNG_MEDIA_TYPE:
            model = pick(engine, model_name, version, True)
            pngs = [_png(model, body, "body", resize)]
            x = pngs[0][0][None]
        else:
            raise RequestError(
                "content-type",
                f"{media_type!r} is not accepted: send application/json, "
                f"{encoding.NPY_MEDIA_TYPE}, {encoding.PNG_MEDIA_TYPE} or multipart/form-data",
                415,
            )
    x = check_shape(model, x, "samples" if media_type in JSON_TYPES else "body")
    return Samples(model, x, wanted, req, [note for _, note in pngs if note])


def _png(model: LoadedModel, body: bytes, field: str, resize: bool) -> tuple[np.ndarray, str | None]:
    return encoding.read_png(body, model.card.sample.shape, model.card.sample.value_range, field, resize)


def images_only(model: LoadedModel) -> LoadedModel:
    """PNG bodies are for image models; a vector model's is refused naming the content type."""
    if model.card.sample.kind != "image":
        raise RequestError(
            "content-type", f"PNG images need an image model; {model.name} takes vectors (send JSON or .npy)"
        )
    return model
