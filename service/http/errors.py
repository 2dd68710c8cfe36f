"""One shape for every error the API answers, and the one table from failures to statuses.

    {"error": "n: must equal len(latents) = 3", "detail": [{"loc": ["n"], "msg": "..."}]}

`error` is one line naming the field and the problem; `detail` lists each problem with its
location, the same shape BentoML uses for validation errors (middleware.py rewrites their `error`
line to name the field too). Bad input is 4xx; a fault of a model or of onnxruntime is 500 with
a message, and the server keeps serving. The Open Inference Protocol's routes (http/v2) read the
same table and answer in the protocol's own shape, {"error": "..."}.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from service.core.encoding import DecodeError
from service.core.problems import RequestError
from service.core.versions import UnknownVersion, VersionGone
from service.runtime.admission import Overloaded
from service.runtime.engine import ModelUnavailable, UnknownModel
from service.runtime.model import InferenceError, NoDiscriminator, NoEncoder

log = logging.getLogger("ganserve.errors")


@dataclass(frozen=True)
class Status:
    """How one kind of failure is answered: REST's status and the field it names, and /v2's
    status. OWN: the exception's own `status` (and `field`); None: that door has no answer for it
    (an unexpected 500)."""

    rest: Optional[int]
    v2: Optional[int]
    field: Optional[str]
    v2_differs_because: str = ""


OWN = -1  # the status the exception carries (a RequestError's check chose it)

# Checked in order, so a subclass comes before its base. Where /v2 answers differently, the reason
# is beside the row: the V2 protocol names models and their versions in the path, and its clients
# (tritonclient) read 404 as "no such model here".
STATUSES: tuple[tuple[type[BaseException], Status], ...] = (
    (Overloaded, Status(503, 503, "server")),  # with Retry-After, the admission queue's wait
    (RequestError, Status(OWN, OWN, None)),  # the check that refused it says the field and status
    (DecodeError, Status(400, 400, None)),  # a body that is not the array it claims (field: the one read)
    (ValidationError, Status(400, 400, None)),  # pydantic's, every problem listed with its field
    (UnknownModel, Status(404, 404, "model")),
    (VersionGone, Status(409, 409, "version")),  # pinned a version that was served and is no longer
    (UnknownVersion, Status(404, 404, "version")),  # pinned a version never served here
    (
        NoDiscriminator,
        Status(
            400,
            404,
            "model",
            v2_differs_because=(
                "REST: realness asked of a generator-only model is a bad request naming `model`; V2: the "
                "discriminator is a model of its own (`<name>.discriminator`), and it does not exist"
            ),
        ),
    ),
    (
        NoEncoder,
        Status(
            400,
            404,
            "model",
            v2_differs_because="REST: /invert of a model without an encoder names `model`; V2: `<name>.encoder` is absent",
        ),
    ),
    (
        ModelUnavailable,
        Status(
            503,
            404,
            "model",
            v2_differs_because=(
                "REST: the folder is known and may verify on the next poll (retry later); V2: a model that "
                "cannot serve is absent from the repository's ready models, as it always answered"
            ),
        ),
    ),
    (
        LookupError,
        Status(
            None,
            404,
            None,
            v2_differs_because=(
                "V2: any other lookup that fails names a model or tensor not here; REST has no such route"
            ),
        ),
    ),
    (InferenceError, Status(500, 500, "model")),  # a fault of a graph or of onnxruntime: logged
)


def status_of(e: BaseException, protocol: Literal["rest", "v2"] = "rest") -> tuple[int, str, str, dict | None]:
    """(status, field, one-line message, headers) for a failure, from STATUSES; anything the table
    does not name is an unexpected 500, logged with its traceback."""
    for kind, status in STATUSES:
        if not isinstance(e, kind):
            continue
        code = status.rest if protocol == "rest" else status.v2
        if code is None:
            break  # a row of the other door only
        code = e.status if code == OWN else code
        field = status.field or getattr(e, "field", None) or "body"
        message = getattr(e, "problem", None) or str(e)
        if isinstance(e, InferenceError):
            log.error("%s", e)
        retry_after = getattr(e, "retry_after_s", None)
        return code, field, message, ({"Retry-After": str(retry_after)} if retry_after else None)
    log.exception("unexpected error")
    return 500, "server", f"unexpected {type(e).__name__}: {e}", None


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
    """The REST answer for a failure."""
    if isinstance(e, ValidationError):
        return error_response(400, validation_problems(e))
    status, field, message, headers = status_of(e)
    return error_response(status, [(field, message)], headers=headers)


def answering_errors(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap an endpoint so that any failure becomes a JSON error response, never a dead worker."""

    @functools.wraps(handler)
    def wrapped(*args, **kwargs) -> Response:
        try:
            return handler(*args, **kwargs)
        except Exception as e:
            return to_response(e)

    return wrapped
