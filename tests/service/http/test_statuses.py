"""One table from failures to statuses (http/errors.py STATUSES), rendered by REST in ganserve's
error shape and by /v2 in the protocol's. Every exception a request can raise is in the table, the
two doors agree except where the table says why, and the real routes answer what the table says."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from service.core.encoding import DecodeError
from service.core.problems import RequestError
from service.core.versions import UnknownVersion, VersionGone
from service.runtime.admission import Overloaded
from service.runtime.engine import ModelUnavailable, UnknownModel
from service.runtime.model import InferenceError, NoDiscriminator
from tests.service.support import DEFAULT

G = f"{DEFAULT}.generator"


class _One(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _One.model_validate({"n": "many"})
    except ValidationError as e:
        return e
    raise AssertionError("unreachable")


SAMPLES = [
    Overloaded("the budget stayed full", 3),
    RequestError("n", "too many", 413),
    DecodeError("body", "not an .npy array"),
    _validation_error(),
    UnknownModel("nope", ["a"]),
    VersionGone("m", "v1", "v2"),
    UnknownVersion("m", "v9", "v2"),
    NoDiscriminator("m"),
    ModelUnavailable("m", "sha256 mismatch"),
    InferenceError("the graph failed"),
]


def _row(e):
    from service.http.errors import STATUSES

    return next(status for kind, status in STATUSES if isinstance(e, kind))


def test_every_failure_a_request_can_raise_is_in_the_table(app):  # app: the test settings first
    from service.http.errors import STATUSES

    kinds = {kind for kind, _ in STATUSES}
    for e in SAMPLES:
        assert type(e) in kinds, type(e).__name__


@pytest.mark.parametrize("e", SAMPLES, ids=lambda e: type(e).__name__)
def test_rest_and_v2_answer_the_tables_statuses_and_differ_only_where_it_says_why(app, e):
    import json

    from service.http import errors
    from service.http.v2.routes import error_answer as v2_answer

    row = _row(e)
    rest = errors.to_response(e)
    v2 = v2_answer(e)
    want_rest = e.status if row.rest == errors.OWN else row.rest
    want_v2 = e.status if row.v2 == errors.OWN else row.v2
    assert (rest.status_code, v2.status_code) == (want_rest, want_v2)
    assert (rest.status_code != v2.status_code) == bool(row.v2_differs_because)
    body = json.loads(rest.body)
    assert body["error"].split(":")[0] == (row.field or getattr(e, "field", None) or body["detail"][0]["loc"][0])
    assert set(json.loads(v2.body)) == {"error"}  # the protocol's shape: one key tritonclient reads
    if isinstance(e, Overloaded):
        assert rest.headers["retry-after"] == "3"


def test_an_exception_outside_the_table_is_an_unexpected_500_on_both_doors(app):
    from service.http import errors
    from service.http.v2.routes import error_answer as v2_answer

    assert errors.to_response(ZeroDivisionError("x")).status_code == 500
    assert v2_answer(ZeroDivisionError("x")).status_code == 500
    # A lookup of the V2 door's own (a model or tensor not here) has a V2 row and no REST one.
    assert (errors.to_response(KeyError("x")).status_code, v2_answer(KeyError("x")).status_code) == (500, 404)


def test_the_real_routes_answer_the_tables_statuses(client):
    """The same failures through the app: an unknown model, and an unavailable one (`broken`, whose
    generator fails its sha256), on /sample and on /v2."""
    assert client.post("/sample", json={"model": "nope"}).status_code == _row(UnknownModel("x", [])).rest
    assert client.get("/v2/models/nope.generator").status_code == _row(UnknownModel("x", [])).v2
    assert client.post("/sample", json={"model": "broken"}).status_code == _row(ModelUnavailable("x", "")).rest
    v2 = client.post("/v2/models/broken.generator/infer", json={"inputs": []})
    assert v2.status_code == _row(ModelUnavailable("x", "")).v2, v2.text
    assert client.get(f"/v2/models/{G}").status_code == 200
