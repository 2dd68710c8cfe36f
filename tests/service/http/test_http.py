"""Every endpoint and format over HTTP, in process (GanServe.to_asgi() + TestClient)."""

from __future__ import annotations

import io
import json
import math

import jsonschema_rs
import numpy as np
import openapi_spec_validator
import pytest
from PIL import Image

from models.card import ModelCard
from service.core import latents
from tests.servers import metric_sum
from tests.service.support import DEFAULT, MAX_BODY, MAX_N

GRID_PAD = 2


@pytest.fixture(scope="module")
def cards(client) -> dict[str, ModelCard]:
    listed = client.get("/models").json()["models"]
    return {m["name"]: ModelCard.model_validate(m["card"]) for m in listed if m["status"] == "ready"}


def npy(response) -> np.ndarray:
    return np.load(io.BytesIO(response.content), allow_pickle=False)


# --- /sample --------------------------------------------------------------------------------


def test_sample_json_defaults_to_16_from_the_default_model_with_a_drawn_seed(client, cards):
    r = client.post("/sample", json={})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model"] == DEFAULT and body["version"] == cards[DEFAULT].version
    assert 0 <= body["seed"] < 2**64
    assert body["shape"] == [16, 1, 8, 8]
    assert np.asarray(body["samples"]).shape == (16, 1, 8, 8)


def test_same_seed_same_bytes_in_every_format(client):
    for fmt in ("json", "npy", "png"):
        request = {"n": 9, "seed": 2**64 - 1, "format": fmt, "truncation": 1.0}
        first, second = client.post("/sample", json=request), client.post("/sample", json=request)
        assert first.status_code == 200, first.text
        assert first.content == second.content, fmt
    other = client.post("/sample", json={"n": 9, "seed": 2**64 - 2, "format": "npy"})
    assert other.content != first.content


def test_small_requests_run_on_the_event_loop_the_rest_in_a_thread_with_the_same_answers(client, monkeypatch):
    """POST /sample reaches routes.sample (not BentoML's API layer): small requests await the
    async batcher, filtered or large ones run in a worker thread; both give the same bytes."""
    from service.core import requests
    from service.http import routes
    from service.runtime.batching import SoleClient
    from service.service import ROUTES

    monkeypatch.setattr(routes, "SOLE_CLIENT", SoleClient(quiet_s=math.inf))  # never alone: always batched
    model = ROUTES.state.engine.get(DEFAULT)
    on_loop, in_thread = model.generator_async.stats, model.generator.stats
    request = {"n": 5, "seed": 3, "format": "npy", "scores": False}
    rows = (on_loop.rows, in_thread.rows)
    small = client.post("/sample", json=request)
    assert (on_loop.rows, in_thread.rows) == (rows[0] + 5, rows[1])
    loop_max_values = requests.LOOP_MAX_VALUES
    monkeypatch.setattr(requests, "LOOP_MAX_VALUES", 4)  # now every request counts as large
    large = client.post("/sample", json=request)
    assert (on_loop.rows, in_thread.rows) == (rows[0] + 5, rows[1] + 5)
    assert small.status_code == large.status_code == 200 and small.content == large.content
    monkeypatch.setattr(requests, "LOOP_MAX_VALUES", loop_max_values)
    filtered = client.post("/sample", json={**request, "min_realness": 0.0})
    assert filtered.status_code == 200 and in_thread.rows > rows[1] + 5 and on_loop.rows == rows[0] + 5
    np.testing.assert_array_equal(npy(filtered), npy(small))  # realness >= 0 keeps every sample
    rows = (on_loop.rows, in_thread.rows)
    client.post("/sample", json={**request, "truncation": 2.0})  # keeps 95% of coordinates: on the loop
    assert (on_loop.rows, in_thread.rows) == (rows[0] + 5, rows[1])
    client.post("/sample", json={**request, "truncation": 0.1})  # keeps 8%: many redraws, in a thread
    assert (on_loop.rows, in_thread.rows) == (rows[0] + 5, rows[1] + 5)


def test_interpolate_is_served_by_the_mounted_route_not_bentomls_api_layer(client, monkeypatch):
    """POST /interpolate reaches routes.interpolate (docs/PERFORMANCE.md#finding-interpolate-route), which runs
    the handler through its module's run_in_threadpool; BentoML's API would call it directly."""
    from service.http import handlers, routes

    ran = []

    async def spy(fn, *args):
        ran.append(fn)
        return fn(*args)

    monkeypatch.setattr(routes, "run_in_threadpool", spy)
    r = client.post("/interpolate", json={"seeds": [1, 2], "steps": 3, "format": "npy"})
    assert r.status_code == 200 and r.headers["x-seeds"] == "1,2"
    assert ran == [handlers.interpolate]


def test_a_small_request_from_the_only_client_runs_its_graphs_on_the_loop_with_the_same_answer(client, monkeypatch):
    """A client alone on the server (batching.SoleClient) gets its graph runs on the loop, outside
    both batchers, up to requests.INLINE_MAX_N samples; the answer is the batched one."""
    from service.core import requests
    from service.http import routes
    from service.runtime.batching import SoleClient
    from service.service import ROUTES

    model = ROUTES.state.engine.get(DEFAULT)
    stats = (
        model.generator_async.stats,
        model.generator.stats,
        model.discriminator_async.stats,
        model.discriminator.stats,
    )
    runs = lambda: [s.rows for s in stats]
    request = {"n": requests.INLINE_MAX_N, "seed": 11, "format": "json", "scores": True}
    monkeypatch.setattr(routes, "SOLE_CLIENT", SoleClient(quiet_s=math.inf))
    batched = client.post("/sample", json=request)
    monkeypatch.setattr(routes, "SOLE_CLIENT", SoleClient(quiet_s=0.0))
    first = client.post("/sample", json=request)  # a new client: not alone yet, batched
    before = runs()
    inline = client.post("/sample", json=request)
    assert runs() == before  # no batcher ran G or D for it
    assert batched.status_code == first.status_code == inline.status_code == 200, inline.text
    assert inline.content == batched.content == first.content
    larger = client.post("/sample", json={**request, "n": requests.INLINE_MAX_N + 1})
    assert larger.status_code == 200 and runs()[0] == before[0] + requests.INLINE_MAX_N + 1  # batched, alone or not


@pytest.mark.parametrize("path, body", [("/sample", {"format": "npy"}), ("/interpolate", {"format": "npy"})])
def test_a_large_body_is_parsed_off_the_loop_with_the_same_answer(client, cards, monkeypatch, path, body):
    from service.core.schemas import InterpolateRequest, SampleRequest
    from service.http import context, routes

    schema = SampleRequest if path == "/sample" else InterpolateRequest
    real_run_in_threadpool, in_thread = routes.run_in_threadpool, []

    async def spy(fn, *args):
        in_thread.append(fn)
        return await real_run_in_threadpool(fn, *args)

    monkeypatch.setattr(routes, "run_in_threadpool", spy)
    z = latents.draw(latents.generator(5), cards[DEFAULT].latent, 3 if path == "/sample" else 2).tolist()
    small_body = client.post(path, json={**body, "latents": z})
    assert schema.model_validate_json not in in_thread
    monkeypatch.setattr(context, "LOOP_MAX_BODY_BYTES", 16)
    large_body = client.post(path, json={**body, "latents": z})
    assert schema.model_validate_json in in_thread
    bad = client.post(path, json={**body, "latents": z, "seeed": 1})
    assert small_body.status_code == large_body.status_code == 200 and small_body.content == large_body.content
    assert bad.status_code == 400 and bad.json()["error"].startswith("seeed: ")


def test_methods_sample_does_not_take_are_refused_by_the_router(client):
    # GET /sample is served (http/caching.py, tests/service/http/test_caching.py); the rest are not.
    assert client.put("/sample", json={}).status_code == 405
    assert client.delete("/sample").status_code == 405


def test_npy_and_json_carry_the_same_float32_samples(client):
    as_json = client.post("/sample", json={"n": 4, "seed": 11})
    as_npy = client.post("/sample", json={"n": 4, "seed": 11, "format": "npy"})
    assert as_npy.headers["content-type"] == "application/x-npy"
    x = npy(as_npy)
    assert x.dtype == np.float32 and x.shape == (4, 1, 8, 8)
    np.testing.assert_array_equal(np.asarray(as_json.json()["samples"], np.float32), x)
    assert as_npy.headers["x-seed"] == "11" and as_npy.headers["x-model"] == DEFAULT
    assert as_npy.headers["x-model-version"] == as_json.json()["version"]
    assert as_npy.headers["x-shape"] == "4,1,8,8"


def test_png_is_one_grid_with_nrow_tiles_per_row(client):
    r = client.post("/sample", json={"n": 10, "seed": 3, "format": "png", "nrow": 4})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as grid:
        assert grid.format == "PNG" and grid.mode == "L"
        assert grid.size == (4 * (8 + GRID_PAD) + GRID_PAD, 3 * (8 + GRID_PAD) + GRID_PAD)
    assert r.headers["x-seed"] == "3"


def test_explicit_latents_give_the_samples_of_the_seed_that_drew_them(client, cards):
    z = latents.draw(latents.generator(21), cards[DEFAULT].latent, 3)
    by_latents = client.post("/sample", json={"latents": z.tolist(), "format": "npy"})
    by_seed = client.post("/sample", json={"n": 3, "seed": 21, "format": "npy"})
    assert by_latents.status_code == 200, by_latents.text
    np.testing.assert_array_equal(npy(by_latents), npy(by_seed))
    assert "x-seed" not in by_latents.headers  # no seed was involved


def test_scores_are_sigmoid_of_the_logits_and_match_score(client):
    body = client.post("/sample", json={"n": 5, "seed": 8, "scores": True}).json()
    logit, realness = np.asarray(body["logit"]), np.asarray(body["realness"])
    np.testing.assert_allclose(realness, 1 / (1 + np.exp(-logit)), rtol=1e-5)
    scored = client.post("/score", json={"samples": body["samples"]}).json()
    np.testing.assert_allclose(scored["logit"], logit, rtol=1e-5, atol=1e-6)


def test_min_realness_filters_and_reports_drawn_and_accepted(client):
    probe = client.post("/sample", json={"n": 64, "seed": 1, "scores": True}).json()
    threshold = float(np.median(probe["realness"]))
    body = client.post("/sample", json={"n": 8, "seed": 2, "scores": True, "min_realness": threshold}).json()
    assert body["accepted"] == len(body["samples"]) == 8 and body["drawn"] >= 8
    assert min(body["realness"]) >= threshold
    assert body["requested"] == 8 and body["exhausted"] is False and "drs_gamma" not in body
    r = client.post("/sample", json={"n": 8, "seed": 2, "format": "npy", "min_realness": threshold})
    assert r.headers["x-accepted"] == "8" and int(r.headers["x-drawn"]) == body["drawn"]
    assert r.headers["x-requested"] == "8" and r.headers["x-exhausted"] == "false"


def test_drs_reports_how_many_it_drew_and_when_the_draw_bound_ran_out(client):
    body = client.post("/sample", json={"n": 8, "seed": 5, "drs": True, "drs_gamma": -50}).json()
    assert body["accepted"] == 8 and body["drawn"] == 16 and body["exhausted"] is False and body["drs_gamma"] == -50
    strict = client.post("/sample", json={"n": 4, "seed": 5, "drs": True, "drs_gamma": 50}).json()
    assert strict["accepted"] == 0 and strict["drawn"] == 4 * 20 and strict["samples"] == []
    assert strict["exhausted"] is True and strict["requested"] == 4
    r = client.post("/sample", json={"n": 4, "seed": 5, "drs": True, "drs_gamma": 50, "format": "npy"})
    assert r.headers["x-exhausted"] == "true" and r.headers["x-drs-gamma"] == "50.0" and npy(r).shape == (0, 1, 8, 8)


def test_drs_without_a_gamma_uses_the_cards_or_zero(client, cards):
    body = client.post("/sample", json={"n": 4, "seed": 5, "drs": True}).json()
    assert body["drs_gamma"] == (cards[DEFAULT].realness.drs_gamma or 0.0)


def test_a_filter_that_passes_nothing_cannot_draw_a_png(client):
    r = client.post("/sample", json={"n": 4, "seed": 5, "min_realness": 1.0, "format": "png"})
    assert r.status_code == 422 and "no sample passed" in r.json()["error"]


def test_vector_model_in_json_and_npy(client, cards):
    body = client.post("/sample", json={"model": "tiny-ring", "n": 3, "seed": 1}).json()
    assert body["shape"] == [3, 2] and body["model"] == "tiny-ring"
    np.testing.assert_array_equal(
        npy(client.post("/sample", json={"model": "tiny-ring", "n": 3, "seed": 1, "format": "npy"})),
        np.asarray(body["samples"], np.float32),
    )


def test_max_n_samples_in_one_request(client):
    assert npy(client.post("/sample", json={"n": MAX_N, "format": "npy"})).shape == (MAX_N, 1, 8, 8)


# --- /interpolate ---------------------------------------------------------------------------


def test_interpolate_between_seeds_ends_at_each_seeds_first_sample(client):
    r = client.post("/interpolate", json={"seeds": [4, 9], "steps": 5, "format": "npy"})
    assert r.status_code == 200, r.text
    path = npy(r)
    assert path.shape == (5, 1, 8, 8) and r.headers["x-seeds"] == "4,9"
    for seed, end in ((4, path[0]), (9, path[-1])):
        np.testing.assert_allclose(
            npy(client.post("/sample", json={"n": 1, "seed": seed, "format": "npy"}))[0], end, atol=1e-6
        )


def test_interpolate_lerp_with_latents_and_json_scores(client, cards):
    a, b = latents.draw(latents.generator(0), cards[DEFAULT].latent, 2).tolist()
    body = client.post("/interpolate", json={"latents": [a, b], "steps": 3, "method": "lerp", "scores": True}).json()
    assert body["method"] == "lerp" and body["seeds"] is None
    assert np.asarray(body["samples"]).shape == (3, 1, 8, 8) and len(body["realness"]) == 3


def test_interpolate_draws_and_returns_seeds_when_none_given(client):
    body = client.post("/interpolate", json={"steps": 2}).json()
    assert len(body["seeds"]) == 2 and all(0 <= s < 2**64 for s in body["seeds"])
    r = client.post("/interpolate", json={"seeds": [1, 2], "steps": 6, "format": "png", "nrow": 6})
    with Image.open(io.BytesIO(r.content)) as grid:
        assert grid.size == (6 * (8 + GRID_PAD) + GRID_PAD, 8 + 2 * GRID_PAD)


# --- /score ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eight_samples(client) -> tuple[np.ndarray, np.ndarray]:
    body = client.post("/sample", json={"n": 8, "seed": 99, "scores": True}).json()
    return np.asarray(body["samples"], np.float32), np.asarray(body["logit"], np.float32)


def test_score_an_npy_body(client, eight_samples):
    x, logit = eight_samples
    buffer = io.BytesIO()
    np.save(buffer, x)
    r = client.post(f"/score?model={DEFAULT}", content=buffer.getvalue(), headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text
    assert r.json()["n"] == 8
    np.testing.assert_allclose(r.json()["logit"], logit, rtol=1e-5, atol=1e-6)


def test_score_an_octet_stream_body_as_npy(client, eight_samples):
    """application/octet-stream (what clients send for "some bytes") is read as .npy."""
    x, logit = eight_samples
    buffer = io.BytesIO()
    np.save(buffer, x)
    r = client.post(
        "/score",
        params={"model": DEFAULT},
        content=buffer.getvalue(),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["logit"], logit, rtol=1e-5, atol=1e-6)


def test_score_a_body_with_no_content_type_as_json(client, eight_samples):
    x, logit = eight_samples
    r = client.post("/score", content=json.dumps({"samples": x[:2].tolist()}).encode())
    assert "content-type" not in r.request.headers  # really sent without one
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["logit"], logit[:2], rtol=1e-5, atol=1e-6)


def test_score_model_in_the_query_and_in_a_json_body(client):
    """?model= names the model of a body that does not (npy, png, or JSON without `model`); a
    JSON body that names one is scored by that one (the query is the fallback)."""
    ring = {"samples": [[0.0, 1.0], [2.0, -2.0]]}
    by_query = client.post("/score", params={"model": "tiny-ring"}, json=ring)
    assert by_query.status_code == 200 and by_query.json()["model"] == "tiny-ring", by_query.text
    by_body = client.post("/score", params={"model": DEFAULT}, json={"model": "tiny-ring", **ring})
    assert by_body.status_code == 200 and by_body.json()["model"] == "tiny-ring", by_body.text
    assert by_body.json()["logit"] == by_query.json()["logit"]
    # The query names the default model's opposite: vectors for tiny-digits are refused as such.
    wrong = client.post("/score", params={"model": "tiny-ring"}, json={"model": DEFAULT, **ring})
    assert wrong.status_code == 400 and "for tiny-digits" in wrong.json()["error"]
    unknown = client.post("/score", params={"model": "nope"}, json=ring)
    assert unknown.status_code == 404 and "unknown model 'nope'" in unknown.json()["error"]


def _png(sample: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.rint(sample[0] * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_score_one_png_body_and_several_pngs_in_a_form(client, eight_samples):
    x, logit = eight_samples
    one = client.post("/score", content=_png(x[0]), headers={"content-type": "image/png"})
    assert one.status_code == 200, one.text
    # 8-bit pixels quantize the sample: close to, not equal to, its logit
    assert one.json()["n"] == 1 and abs(one.json()["logit"][0] - logit[0]) < 0.05
    files = [("images", (f"{i}.png", _png(s), "image/png")) for i, s in enumerate(x[:3])]
    many = client.post("/score", files=files, data={"model": DEFAULT})
    assert many.status_code == 200, many.text
    np.testing.assert_allclose(many.json()["logit"], logit[:3], atol=0.05)


def test_score_vectors_as_json(client):
    r = client.post("/score", json={"model": "tiny-ring", "samples": [[0.0, 1.0], [2.0, -2.0]]})
    assert r.status_code == 200 and r.json()["model"] == "tiny-ring"
    assert len(r.json()["realness"]) == 2 and all(0 < v < 1 for v in r.json()["realness"])


# --- /models, health, metrics, docs -----------------------------------------------------------


def test_models_lists_cards_providers_and_the_unavailable_one_with_its_reason(client):
    body = client.get("/models").json()
    assert body["default_model"] == DEFAULT and "cpu" in body["device"]
    # The test settings' max n and body limit (conftest.py), and the default draw bound.
    assert body["limits"] == {"max_n": MAX_N, "max_draws_factor": 20, "max_body_bytes": MAX_BODY}
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"broken", "faulty", "tiny-cond", "tiny-digits", "tiny-ring", "tiny-style"}
    ready = by_name[DEFAULT]
    assert ready["status"] == "ready" and ready["provider"] == "CPUExecutionProvider"
    assert (
        ready["card"]["sample"]["shape"] == [1, 8, 8]
        and ready["version"] == ready["card"]["files"]["generator"]["sha256"][:12]
    )
    assert by_name["broken"]["status"] == "unavailable" and "generator.onnx" in by_name["broken"]["reason"]


def test_health_metrics_and_docs_need_no_token_and_metrics_count_samples(client):
    open_client_headers = {"Authorization": ""}
    for path in ("/livez", "/readyz", "/docs.json"):
        assert client.get(path, headers=open_client_headers).status_code == 200, path
    before = _served(client.get("/metrics", headers=open_client_headers).text)
    client.post("/sample", json={"n": 7})
    after = _served(client.get("/metrics", headers=open_client_headers).text)
    assert after - before == 7
    paths = client.get("/docs.json").json()["paths"]
    assert {"/sample", "/interpolate"} <= set(paths)


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _no_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), sorted(k for k in set(keys) if keys.count(k) > 1)
    return dict(pairs)


def test_the_openapi_document_is_valid_openapi_and_describes_every_route(client):
    # Parsed with a check for repeated keys (JSON parsers silently keep the last of them).
    doc = json.loads(client.get("/docs.json").content, object_pairs_hook=_no_duplicate_keys)
    openapi_spec_validator.validate(doc)  # OpenAPI 3.1: structure, unique operationIds, refs
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "ganserve" and doc["info"]["version"] not in ("", "None")
    assert "BentoML Team" not in str(doc["info"]) and "/score" in doc["info"]["description"]
    assert {"/sample", "/interpolate", "/score", "/models", "/generate_dataset/submit"} <= set(doc["paths"])
    assert {"/v2", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/versions/{version}/infer"} <= set(
        doc["paths"]
    )
    score = doc["paths"]["/score"]["post"]
    assert set(score["requestBody"]["content"]) == {
        "application/json",
        "application/x-npy",
        "image/png",
        "multipart/form-data",
    }
    assert {"200", "400", "404", "415"} <= set(score["responses"])
    assert doc["paths"]["/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ModelsResponse"
    )
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert "#/components/schemas/ModelCard" in refs and "#/components/schemas/ScoreRequest" in refs
    prefix = "#/components/schemas/"
    missing = [r for r in refs if not (r.startswith(prefix) and r[len(prefix) :] in schemas)]
    assert not missing, missing
    # Every route behind the token and the body limit documents their refusals, and (the test
    # server has a token) declares bearer authentication, for the UI's "Authorize" button.
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "GANSERVE_API_TOKEN",
    }
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            guarded = path not in ("/livez", "/readyz", "/healthz", "/metrics", "/v2/health/live", "/v2/health/ready")
            assert ("401" in operation["responses"]) == guarded, (path, method)
            assert operation.get("security") == ([{"bearer": []}] if guarded else None), (path, method)
            if method == "post":
                assert "413" in operation["responses"], path
            if guarded:
                assert "504" in operation["responses"], (path, method)  # the request timeout
    for path, method in (("/generate_dataset", "post"), ("/generate_dataset/get", "get")):
        assert {"403", "409", "422"} <= set(doc["paths"][path][method]["responses"]), path
    # The error schemas say what every refusal really holds: `detail` is a list of {loc, msg}.
    refusal = client.post("/score", json={"samples": []})
    assert refusal.status_code == 400 and isinstance(refusal.json()["detail"], list)
    for name in ("Error", "InvalidArgument", "NotFound", "InternalServerError"):
        assert schemas[name]["properties"]["detail"]["type"] == "array", name


def test_without_a_token_the_document_declares_no_authentication(client):
    from service.http import openapi
    from service.service import ROUTES

    doc = openapi.complete(ROUTES.state.bentoml_spec(), token_required=False)
    openapi_spec_validator.validate(doc)
    assert "securitySchemes" not in doc["components"]
    assert not [(p, m) for p, ops in doc["paths"].items() for m, op in ops.items() if "security" in op]


def test_real_answers_match_their_documented_schemas_and_headers(client):
    """The documented response schemas are checked against real answers (jsonschema, with the
    document's own components), so the document cannot drift from what the routes send."""
    doc = client.get("/docs.json").json()

    def validator(name: str):
        return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})

    models = client.get("/models").json()
    validator("ModelsResponse").validate(models)
    score = client.post("/score", json={"samples": np.zeros((2, 1, 8, 8)).tolist()})
    assert score.status_code == 200
    validator("ScoreResponse").validate(score.json())
    validator("Error").validate(client.post("/score", json={"samples": [1]}).json())
    z = [[0.1] * 8, [0.2] * 8]  # tiny-digits takes 8 latent values
    for body in ({"n": 3, "scores": True}, {"n": 2, "min_realness": 0.0}, {"latents": z}):
        answer = client.post("/sample", json=body)
        assert answer.status_code == 200, answer.text
        validator("SampleResponse").validate(answer.json())
    for body in ({"seeds": [1, 2], "steps": 3, "scores": True}, {"latents": z, "steps": 2, "method": "lerp"}):
        answer = client.post("/interpolate", json=body)
        assert answer.status_code == 200, answer.text
        validator("InterpolateResponse").validate(answer.json())
    # Refusals: each status is documented for its route, and the body is the documented Error.
    refusals = [
        ("/sample", {"n": 1}, {"Authorization": "Bearer wrong"}, 401),
        ("/interpolate", {"steps": 2, "model": "broken"}, {}, 503),
        ("/sample", {"n": 2, "format": "png", "min_realness": 1.0}, {}, 422),
        ("/sample", {"n": 1, "model": "nope"}, {}, 404),
        ("/score", {"samples": [[0.0]] * (MAX_BODY // 4)}, {}, 413),
    ]
    for path, body, headers, status in refusals:
        answer = client.post(path, json=body, headers=headers)
        assert answer.status_code == status, (path, body, answer.text)
        assert str(status) in doc["paths"][path]["post"]["responses"], (path, status)
        validator("Error").validate(answer.json())
    for path, body in (
        ("/sample", {"n": 2, "min_realness": 0.0, "format": "npy"}),
        ("/sample", {"n": 2, "format": "png"}),
        ("/interpolate", {"steps": 2, "format": "npy"}),
    ):
        answer = client.post(path, json=body)
        documented = doc["paths"][path]["post"]["responses"]["200"]
        assert answer.headers["content-type"] in documented["content"]
        sent = {h for h in answer.headers if h.startswith("x-")}
        assert sent and sent <= {h.lower() for h in documented["headers"]}, (path, sorted(sent))
    bad = {**models, "models": [{"name": "x", "status": "lost"}]}
    with pytest.raises(jsonschema_rs.ValidationError):  # the check can fail
        validator("ModelsResponse").validate(bad)


def _served(metrics: str) -> float:
    return metric_sum(metrics, "ganserve_samples_served_total", model=DEFAULT)


def test_an_onnxruntime_failure_answers_500_with_a_message_and_the_server_keeps_serving(client):
    r = client.post("/sample", json={"model": "faulty", "n": 1})
    assert r.status_code == 500
    assert "onnxruntime failed running faulty's generator" in r.json()["error"]
    assert client.post("/sample", json={"model": "faulty", "n": 2}).status_code == 200
    assert client.post("/sample", json={"n": 1}).status_code == 200


def test_png_grid_geometry_for_the_default_nrow(client):
    r = client.post("/sample", json={"n": 5, "seed": 1, "format": "png"})
    cols = math.ceil(math.sqrt(5))
    with Image.open(io.BytesIO(r.content)) as grid:
        assert grid.size == (cols * (8 + GRID_PAD) + GRID_PAD, 2 * (8 + GRID_PAD) + GRID_PAD)
