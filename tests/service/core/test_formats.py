"""The table of answer formats (core/formats.py) is the one place a format is declared: the request
schema, the checks, admission's charge, the HTTP answer and the OpenAPI document all read it. Each
test here holds one of them to the table, so a format added there and forgotten elsewhere fails."""

from __future__ import annotations

import io

import numpy as np
import pytest

from service.core import formats
from tests.service.support import DEFAULT

RING = "tiny-ring"  # a vector model: image-only formats are refused for it


def test_every_format_has_an_encoder_and_a_distinct_media_type(app):  # app: the test settings first
    from service.http import handlers

    assert {f.encoder for f in formats.FORMATS.values()} <= set(handlers.ENCODERS)
    media = [f.media_type for f in formats.FORMATS.values()]
    assert len(set(media)) == len(media)
    assert formats.SCORE_FORMAT in formats.FORMATS and formats.FORMATS[formats.SCORE_FORMAT].fields_in_body


def test_the_request_schemas_accept_exactly_the_tables_formats(app):
    from service.core.schemas import InterpolateRequest, SampleRequest

    for schema in (SampleRequest, InterpolateRequest):
        assert schema.model_json_schema()["properties"]["format"]["enum"] == list(formats.NAMES)


def test_the_openapi_document_lists_the_tables_media_types(client):
    spec = client.get("/docs.json").json()
    for path in ("/sample", "/interpolate"):
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {f.media_type for f in formats.FORMATS.values()}
        for f in formats.FORMATS.values():  # a format with its fields in the body is JSON with a schema
            assert ("$ref" in content[f.media_type]["schema"]) == f.fields_in_body


@pytest.mark.parametrize("name", formats.NAMES)
def test_admission_charges_each_format_by_the_tables_figure(app, name):
    from service.core import requests
    from service.core.schemas import InterpolateRequest, SampleRequest
    from service.runtime import admission
    from service.service import ROUTES

    model = ROUTES.state.engine.get(DEFAULT)
    n, dim, size = 200, model.card.latent.dim, model.card.sample.size
    spec = formats.get(name)
    want = admission.sample_cost(n, dim, size, spec.peak_bytes_per_value, fixed_bytes=spec.fixed_peak_bytes)
    assert requests.sample_charge(model, SampleRequest(n=n, format=name), 20) == want
    assert requests.interpolate_charge(model, InterpolateRequest(steps=n, format=name)) == want


@pytest.mark.parametrize("name", formats.NAMES)
def test_each_format_is_answered_with_its_media_type_and_its_fields_where_the_table_says(client, name):
    r = client.post("/sample", json={"n": 3, "seed": 5, "format": name})
    spec = formats.get(name)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == spec.media_type
    if spec.fields_in_body:
        assert r.json()["seed"] == 5 and "x-seed" not in r.headers
    else:
        assert r.headers["x-seed"] == "5" and r.headers["x-shape"] == "3,1,8,8"
    if name == "npy":
        assert np.load(io.BytesIO(r.content), allow_pickle=False).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("name", formats.NAMES)
def test_the_checks_follow_the_table(client, name):
    spec = formats.get(name)
    vector = client.post("/sample", json={"model": RING, "n": 2, "format": name})
    if spec.image_only:
        assert vector.status_code == 400 and vector.json()["error"].startswith("format: ")
    else:
        assert vector.status_code == 200, vector.text
    gridded = client.post("/sample", json={"n": 2, "format": name, "nrow": 1})
    if spec.grid:
        assert gridded.status_code == 200, gridded.text
    else:
        assert gridded.status_code == 400 and gridded.json()["error"].startswith("nrow: ")
    scored = client.post("/sample", json={"n": 2, "format": name, "scores": True})
    assert scored.status_code == (200 if name == formats.SCORE_FORMAT else 400), scored.text
