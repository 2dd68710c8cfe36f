"""Cacheable answers (service/http/caching.py): fixed /sample requests carry a strong ETag and a
Cache-Control that matches what may be cached; GET /sample answers a matching If-None-Match with
304 before any graph runs; a fresh-seed request is never stored."""

from __future__ import annotations

import httpx
import pytest

from tests.service.support import COND, DEFAULT, TOKEN


def test_get_answers_the_bytes_post_answers_with_a_strong_etag(client):
    got = client.get("/sample", params={"seed": 3, "n": 4, "format": "npy"})
    posted = client.post("/sample", json={"seed": 3, "n": 4, "format": "npy"})
    assert got.status_code == posted.status_code == 200
    assert got.content == posted.content
    tag = got.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/") and tag == posted.headers["etag"]
    # The test server requires a token: private, and revalidated since the version is not pinned.
    assert got.headers["cache-control"] == "private, no-cache"
    again = client.get("/sample", params={"seed": 3, "n": 4, "format": "npy"})
    assert again.headers["etag"] == tag


def test_a_matching_if_none_match_is_a_304_before_anything_runs(client):
    params = {"seed": 11, "n": 2, "format": "npy"}
    tag = client.get("/sample", params=params).headers["etag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        r = client.get("/sample", params=params, headers={"If-None-Match": header})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == tag, header
    assert client.get("/sample", params=params, headers={"If-None-Match": '"other"'}).status_code == 200
    # POST never answers 304 (HTTP would have it 412 for a POST): it answers the sample.
    r = client.post("/sample", json=params, headers={"If-None-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] == tag


def test_the_tag_changes_with_everything_that_changes_the_bytes(client):
    base = {"seed": 5, "n": 3, "format": "npy"}
    tags = {
        client.get("/sample", params={**base, **change}).headers["etag"]
        for change in ({}, {"n": 4}, {"seed": 6}, {"format": "json"}, {"model": "tiny-ring"}, {"truncation": 0.5})
    }
    assert len(tags) == 6
    assert client.get("/sample", params={**base, "model": DEFAULT}).headers["etag"] in tags  # the default, named


def test_pinned_answers_are_immutable_and_fresh_seeds_are_never_stored(client):
    from service.http.caching import YEAR_S

    version = next(m for m in client.get("/models").json()["models"] if m["name"] == DEFAULT)["version"]
    r = client.get("/sample", params={"seed": 1, "n": 2, "version": version, "format": "npy"})
    assert r.status_code == 200 and r.headers["cache-control"] == f"private, max-age={YEAR_S}, immutable"
    fresh = client.get("/sample", params={"n": 2, "format": "npy"})
    assert fresh.headers["cache-control"] == "no-store" and "etag" not in fresh.headers
    assert client.get("/sample", params={"n": 2}, headers={"If-None-Match": "*"}).status_code == 200


def test_query_parameters_are_checked_and_named(client):
    r = client.get("/sample", params={"seed": 1, "seeed": 2})
    assert r.status_code == 400 and "seeed" in r.json()["error"]
    r = client.get("/sample", params={"latents": "[[0.1]]"})
    assert r.status_code == 400 and r.json()["error"].startswith("latents: ")
    r = client.get("/sample", params={"seed": "x"})
    assert r.status_code == 400 and r.json()["error"].startswith("seed")
    r = client.get("/sample", params=[("seed", "1"), ("seed", "2")])
    assert r.status_code == 400 and "given twice" in r.json()["error"]
    # Labels as a query: one class, a list, or a policy; the same answer as the JSON body's.
    for labels, body in (("2", 2), ("0,1,2", [0, 1, 2]), ("balanced", "balanced")):
        q = {"model": COND, "seed": 4, "n": 3, "labels": labels, "format": "npy"}
        assert client.get("/sample", params=q).content == client.post("/sample", json={**q, "labels": body}).content


def test_the_policy_in_full(app):  # app: the test settings before the schemas are imported
    from service.core.schemas import SampleRequest
    from service.http.caching import YEAR_S, cache_control, matches

    fixed, pinned = SampleRequest(seed=1), SampleRequest(seed=1, version="abc")
    assert cache_control(SampleRequest(), token_required=False, cache_keys_token=False) == "no-store"
    assert cache_control(fixed, token_required=False, cache_keys_token=False) == "public, no-cache"
    assert cache_control(pinned, token_required=False, cache_keys_token=False) == f"public, max-age={YEAR_S}, immutable"
    assert cache_control(pinned, token_required=True, cache_keys_token=False).startswith("private")
    assert cache_control(pinned, token_required=True, cache_keys_token=True).startswith("public")
    assert SampleRequest(latents=[[0.0]]) and cache_control(SampleRequest(latents=[[0.0]]), False, False) != "no-store"
    assert not matches(None, '"a"') and not matches('"a"', None) and matches(' "b" , W/"a"', '"a"')


def test_a_real_server_answers_304_over_http(real_server):
    with httpx.Client(base_url=real_server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        first = http.get("/sample", params={"seed": 8, "n": 2, "format": "npy"})
        assert first.status_code == 200 and first.headers["etag"]
        second = http.get(
            "/sample", params={"seed": 8, "n": 2, "format": "npy"}, headers={"If-None-Match": first.headers["etag"]}
        )
        assert second.status_code == 304 and second.content == b""


@pytest.mark.parametrize("field", ["w", "edit", "mix"])
def test_body_only_fields_point_to_post(client, field):
    r = client.get("/sample", params={field: "1"})
    assert r.status_code == 400 and "POST /sample" in r.json()["error"]


def test_get_sample_takes_every_field_of_the_schema_but_the_body_only_ones(client):
    """One hand-kept list (caching.BODY_ONLY): GET /sample's query fields, and the parameters
    /docs.json documents for it, are the rest of SampleRequest's fields, in the schema's order."""
    from service.core.schemas import SampleRequest
    from service.http.caching import BODY_ONLY, QUERY_FIELDS

    fields = list(SampleRequest.model_json_schema()["properties"])
    assert set(BODY_ONLY) < set(fields)  # a renamed field would leave a stale name here
    assert list(QUERY_FIELDS) == [name for name in fields if name not in BODY_ONLY]
    get = client.get("/docs.json").json()["paths"]["/sample"]["get"]
    assert [p["name"] for p in get["parameters"] if p["in"] == "query"] == list(QUERY_FIELDS)
    assert all(name in get["description"] for name in BODY_ONLY)


def test_post_makes_its_etag_only_for_an_answer(client, monkeypatch):
    """The tag costs ~7.5 us: POST /sample makes it once its answer has succeeded, never for a
    request that fails; GET still makes it first, since it may answer 304 before anything runs."""
    from service.http import caching

    made = []
    real = caching.etag
    monkeypatch.setattr(caching, "etag", lambda *args: made.append(args) or real(*args))
    # Fails past the model lookup: the default model is not conditional, so it takes no labels.
    r = client.post("/sample", json={"seed": 2, "n": 2, "labels": 1, "format": "npy"})
    assert r.status_code == 400 and "etag" not in r.headers and made == []
    r = client.post("/sample", json={"seed": 2, "n": 2, "format": "npy"})
    assert r.status_code == 200 and len(made) == 1
    assert r.headers["etag"] == client.get("/sample", params={"seed": 2, "n": 2, "format": "npy"}).headers["etag"]
    assert len(made) == 2
    fresh = client.post("/sample", json={"n": 2, "format": "npy"})  # no tag, Cache-Control still
    assert fresh.status_code == 200 and "etag" not in fresh.headers and fresh.headers["cache-control"] == "no-store"
