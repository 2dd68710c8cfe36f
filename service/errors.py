"""One shape for every error the API answers, and the mapping from failures to statuses.

    {"error": "n: must equal len(latents) = 3", "detail": [{"loc": ["n"], "msg": "..."}]}

`error` is one line naming the field and the problem; `detail` lists each problem with its
location, the same shape BentoML uses for validation errors (middleware.py rewrites their `error`
line to name the field too). Bad input is 4xx; a fault of a model or of onnxruntime is 500 with
a message, and the server keeps serving.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from .encoding import DecodeError
from .engine import InferenceError, ModelUnavailable, NoDiscriminator, UnknownModel
from .versions import UnknownVersion, VersionGone

log = logging.getLogger("ganserve.errors")


class RequestError(ValueError):
    """A request the service will not serve, with the field at fault and the HTTP status."""

    def __init__(self, field: str, problem: str, status: int = 400):
        self.field, self.problem, self.status = field, problem, status
        super().__init__(f"{field}: {problem}")


def error_response(status: int, problems: list[tuple[str, str]], headers: dict | None = None) -> JSONResponse:
    """problems: (field, message) pairs; the first one makes the one-line `error`."""
    field, msg = problems[0]
    detail = [{"loc": [p for p in f.split(".") if p], "msg": m} for f, m in problems]
    return JSONResponse({"error": f"{field}: {msg}", "detail": detail}, status_code=status, headers=headers)


def validation_problems(e: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """pydantic errors as (field path, message), e.g. ("latents.0.3", "Input should be a finite number")."""
    out = []
    for err in e.errors(include_url=False, include_context=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or prefix or "body"
        out.append((where, err["msg"]))
    return out


def to_response(e: Exception) -> Response:
    if isinstance(e, RequestError):
        retry_after = getattr(e, "retry_after_s", None)  # admission.Overloaded: 503 with Retry-After
        return error_response(e.status, [(e.field, e.problem)],
                              headers={"Retry-After": str(retry_after)} if retry_after else None)
    if isinstance(e, DecodeError):
        return error_response(400, [(e.field, e.problem)])
    if isinstance(e, ValidationError):
        return error_response(400, validation_problems(e))
    if isinstance(e, UnknownModel):
        return error_response(404, [("model", str(e))])
    if isinstance(e, VersionGone):  # pinned a version that was served and is no longer
        return error_response(409, [("version", str(e))])
    if isinstance(e, UnknownVersion):
        return error_response(404, [("version", str(e))])
    if isinstance(e, NoDiscriminator):  # asked for realness of a generator-only model
        return error_response(400, [("model", str(e))])
    if isinstance(e, ModelUnavailable):
        return error_response(503, [("model", str(e))])
    if isinstance(e, InferenceError):
        log.error("%s", e)
        return error_response(500, [("model", str(e))])
    log.exception("unexpected error")
    return error_response(500, [("server", f"unexpected {type(e).__name__}: {e}")])


def answering_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap an endpoint so that any failure becomes a JSON error response, never a dead worker."""

    @functools.wraps(handler)
    def wrapped(*args, **kwargs) -> Response:
        try:
            return handler(*args, **kwargs)
        except Exception as e:
            return to_response(e)

    return wrapped
