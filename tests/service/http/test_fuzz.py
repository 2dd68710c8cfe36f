"""Property-based fuzzing: the service's own OpenAPI schema (schemathesis), valid and invalid
requests alike, and arbitrary bodies for /score: never a 5xx, and from the schema's cases only
statuses /docs.json documents for the route.

The floor: requests valid for the real models (every option, in any combination the API allows)
must all answer 200, their bodies valid against the schemas /docs.json documents, their npy and
png answers of the documented type and shape. A /sample that refused everything would pass the
"never a 5xx" fuzz; it fails this one.

Bounded (a few dozen examples per operation and mode) so the whole file runs in seconds, and
derandomized (Hypothesis draws its cases from a seed fixed per test): a failure reproduces.
The `faulty` model is left out: its 500 on odd batch sizes is deliberate (see test_http.py).
"""

from __future__ import annotations

import io

import jsonschema_rs
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.service.support import COND, DEFAULT, MAX_N, TOKEN

EXAMPLES = 40
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
API_ROUTES = ("/sample", "/interpolate", "/score", "/invert", "/models")


@pytest.fixture(scope="module")
def operations(client) -> dict:
    schema = schemathesis.openapi.from_dict(client.get("/docs.json").json())
    ops = {}
    for op in (result.ok() for result in schema.get_all_operations()):
        # POST where a path has both (/sample); GET /sample under its own key.
        key = "GET /sample" if (op.path, op.method.upper()) == ("/sample", "GET") else op.path
        ops.setdefault(key, op)
    assert set(API_ROUTES) <= set(ops) and "GET /sample" in ops, sorted(ops)
    return ops


def _send(client, case):
    kwargs = case.as_transport_kwargs(base_url="http://testserver")  # requests-style keywords
    # The document declares bearer auth, and schemathesis fills it with made-up tokens: the fuzz
    # is about bodies (test_http_errors.py covers the token), so every case carries the real one.
    kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {TOKEN}"}
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), (bytes, str)):  # httpx takes raw bodies as `content`
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("files"):  # multipart parts, requests-style (name, (filename, value)): httpx wants str or bytes
        kwargs["files"] = [
            (name, (part[0], part[1] if isinstance(part[1], (bytes, str)) else str(part[1]), *part[2:]))
            for name, part in kwargs["files"]
        ]
    elif "files" in kwargs:
        kwargs.pop("files")
    if isinstance(case.body, dict) and case.body.get("model") == "faulty":
        return None
    return client.request(**kwargs), kwargs


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        *((path, mode) for path in API_ROUTES[:4] for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)),
        ("/models", GenerationMode.POSITIVE),  # it takes no input, so there is nothing to make invalid
        ("GET /sample", GenerationMode.POSITIVE),
        ("GET /sample", GenerationMode.NEGATIVE),
    ],
    ids=lambda v: (
        v.value.replace("positive", "valid").replace("negative", "invalid") if isinstance(v, GenerationMode) else v
    ),
)
def test_no_5xx_and_only_documented_statuses_from_the_openapi_schema(client, operations, path, mode):
    statuses: dict[int, int] = {}
    documented = operations[path].definition.raw["responses"]

    @FUZZ_SETTINGS
    @given(case=operations[path].as_strategy(generation_mode=mode))
    def run(case):
        sent = _send(client, case)
        if sent is None:
            return
        response, kwargs = sent
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (kwargs, response.text)
        assert str(response.status_code) in documented, (response.status_code, kwargs, response.text)  # in /docs.json
        if response.status_code >= 400:
            assert response.json()["error"]  # every refusal says why

    run()
    assert sum(statuses.values()) > 0
    assert 401 not in statuses, statuses  # the cases reached the routes, not just the token check


LABELS = (
    st.integers(-1, 4)
    | st.sampled_from(["balanced", "class1", "nope", "", True, 1.5, None])
    | st.lists(st.integers(-1, 3) | st.sampled_from(["class0", "x"]), max_size=6)
)


def test_no_5xx_when_sampling_the_real_model_with_any_valid_options(client):
    """The schema fuzz mostly names unknown models; this one always hits tiny-digits or the
    conditional tiny-cond, with or without labels."""

    @FUZZ_SETTINGS
    @given(
        model=st.sampled_from([DEFAULT, COND]),
        body=st.fixed_dictionaries(
            {},
            optional={
                "n": st.integers(-2, 300),
                "seed": st.integers(-1, 2**64),
                "truncation": st.floats(allow_nan=False, allow_infinity=False) | st.none(),
                "format": st.sampled_from(["json", "npy", "png", "bmp"]),
                "nrow": st.integers(0, 20) | st.none(),
                "scores": st.booleans(),
                "min_realness": st.floats(-0.5, 1.5) | st.none(),
                "drs": st.booleans(),
                "drs_gamma": st.floats(-60, 60),
                "labels": LABELS,
            },
        ),
    )
    def run(model, body):
        r = client.post("/sample", json={"model": model, **body})
        assert r.status_code < 500, (body, r.text)
        if model == DEFAULT and body.get("labels") is not None:  # labels to an unconditional model
            assert r.status_code == 400, (body, r.text)

    run()


@FUZZ_SETTINGS
@given(
    content_type=st.sampled_from(["application/json", "application/x-npy", "image/png", "text/plain", ""]),
    body=st.binary(max_size=256)
    | st.builds(
        lambda v: __import__("json").dumps(v).encode(),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.sampled_from(["model", "samples", "x", "labels"]), inner, max_size=3)
            ),
            max_leaves=20,
        ),
    ),
    model=st.sampled_from([None, DEFAULT, "tiny-ring", COND, "nope", ""]),
    labels=st.none() | st.sampled_from(["0", "1,2", "balanced", "class1", "9", "a,,b", ""]),
)
def test_no_5xx_from_any_score_body(client, content_type, body, model, labels):
    params = {"model": model} if model is not None else {}
    if labels is not None:
        params["labels"] = labels
    r = client.post("/score", content=body, headers={"content-type": content_type}, params=params)
    assert r.status_code < 500, (content_type, body, r.text)
    assert r.status_code == 200 or r.json()["error"]


@FUZZ_SETTINGS
@given(
    path=st.sampled_from(["/generate_dataset", "/generate_dataset/submit"]),
    content_type=st.sampled_from(
        [
            "multipart/form-data",  # no boundary: BentoML's own form parser answered 500
            "multipart/form-data; boundary=xyz",
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "",
        ]
    ),
    body=st.binary(max_size=128)
    | st.sampled_from([b"--xyz\r\nContent-Disposition: form-data\r\n\r\n", b"name=&samples=x", b"{}", b"[]"]),
)
def test_the_task_routes_answer_bad_bodies_with_a_4xx(real_server, path, content_type, body):
    """BentoML's task routes, BentoML's own parsing included, never answer bad input with a 5xx
    (the sync route runs the task at once; submit's task fails with the same status). A real
    server: BentoML's task store needs its lifespan and worker, which the in-process client lacks."""
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"} | ({"content-type": content_type} if content_type else {})
    with httpx.Client(base_url=real_server, timeout=30) as http:
        r = http.post(path, content=body, headers=headers)
        if path.endswith("/submit") and r.status_code == 200:  # queued: the task's own answer counts
            task_id = r.json()["task_id"]
            for _ in range(200):
                status = http.get("/generate_dataset/status", params={"task_id": task_id}, headers=headers)
                if status.json()["status"] != "in_progress":
                    break
                __import__("time").sleep(0.05)
            r = http.get("/generate_dataset/get", params={"task_id": task_id}, headers=headers)
    assert 400 <= r.status_code < 500, (path, content_type, body, r.status_code, r.text)
    assert r.json()["error"]


# --- the floor: valid requests must succeed ----------------------------------------------------

VALID_MODELS = (DEFAULT, "tiny-ring")  # an image model and a vector model, both really trained
SEEDS = st.integers(0, 2**64 - 1)
FINITE = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)
TRUNCATION = st.none() | st.floats(0.1, 100)  # keeps >= 8% of a coordinate's draws (schema: 0.01-100)


@pytest.fixture(scope="module")
def documented(client) -> dict:
    """The schemas and 200 answers /docs.json documents, and each model's card from /models."""
    doc = client.get("/docs.json").json()
    cards = {m["name"]: m["card"] for m in client.get("/models").json()["models"] if m["name"] in VALID_MODELS}
    assert set(cards) == set(VALID_MODELS)

    def validator(name: str):
        return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})

    return {"doc": doc, "cards": cards, "validator": validator}


def _latents(card: dict, count: int):
    return st.lists(
        st.lists(FINITE, min_size=card["latent"]["dim"], max_size=card["latent"]["dim"]), min_size=count, max_size=count
    )


def valid_sample_requests(cards: dict):
    """Bodies that /sample must answer 200: the options combined only as the API allows (png for
    image models, without a filter that could leave nothing to draw; nrow with png; scores with json)."""

    @st.composite
    def build(draw):
        model = draw(st.sampled_from(VALID_MODELS))
        card = cards[model]
        formats = ["json", "npy", "png"] if card["sample"]["kind"] == "image" else ["json", "npy"]
        body = {
            "model": draw(st.sampled_from([model, None])) if model == DEFAULT else model,
            "format": draw(st.sampled_from(formats)),
        }
        n = draw(st.integers(1, 24))
        if draw(st.booleans()):
            body["latents"] = draw(_latents(card, n))
            if draw(st.booleans()):
                body["n"] = n
        else:
            body.update(n=n, seed=draw(SEEDS), truncation=draw(TRUNCATION))
            if n == 24 and draw(st.booleans()):
                body["n"] = MAX_N  # the largest request, now and then
        if body["format"] == "png":
            body["nrow"] = draw(st.none() | st.integers(1, 1024))
        else:
            body["min_realness"] = draw(st.none() | st.floats(0, 1))
            body["drs"] = draw(st.booleans())
            body["drs_gamma"] = draw(st.floats(-50, 50))
        if body["format"] == "json":
            body["scores"] = draw(st.booleans())
        return {k: v for k, v in body.items() if v is not None}

    return build()


def valid_interpolate_requests(cards: dict):
    @st.composite
    def build(draw):
        model = draw(st.sampled_from(VALID_MODELS))
        card = cards[model]
        formats = ["json", "npy", "png"] if card["sample"]["kind"] == "image" else ["json", "npy"]
        body = {
            "model": model,
            "steps": draw(st.integers(2, 24)),
            "method": draw(st.sampled_from(["slerp", "lerp"])),
            "format": draw(st.sampled_from(formats)),
        }
        if draw(st.booleans()):
            body["latents"] = draw(_latents(card, 2))
        else:
            body["seeds"] = draw(st.none() | st.lists(SEEDS, min_size=2, max_size=2))
            body["truncation"] = draw(TRUNCATION)
        if body["format"] == "png":
            body["nrow"] = draw(st.none() | st.integers(1, 1024))
        if body["format"] == "json":
            body["scores"] = draw(st.booleans())
        return {k: v for k, v in body.items() if v is not None}

    return build()


def _check_answer(documented: dict, path: str, schema: str, body: dict, r) -> None:
    """200, of a documented type; json valid against the documented schema; npy of the answered
    shape; png a PNG; every field consistent with the request."""
    assert r.status_code == 200, (path, body, r.text)
    answer = documented["doc"]["paths"][path]["post"]["responses"]["200"]
    media_type = r.headers["content-type"]
    assert media_type in answer["content"], (path, media_type)
    card = documented["cards"][body.get("model") or DEFAULT]
    sample_shape = card["sample"]["shape"]
    filtered = "min_realness" in body or body.get("drs")
    if path == "/sample":
        n = len(body["latents"]) if "latents" in body else body.get("n", 16)
    else:
        n = body["steps"]
    if media_type == "application/json":
        got = r.json()
        documented["validator"](schema).validate(got)
        assert got["model"] == card["name"] and got["shape"][1:] == sample_shape
        assert got["shape"][0] == n if not filtered else got["shape"][0] <= n
        if got["shape"][0]:
            assert np.asarray(got["samples"], np.float32).shape == (got["shape"][0], *sample_shape)
        else:  # a filter that passed nothing
            assert got["samples"] == []
        if body.get("scores"):
            assert len(got["realness"]) == len(got["logit"]) == got["shape"][0]
        if "seed" in body:
            assert got["seed"] == body["seed"]
    else:
        assert set(r.headers) >= {"x-model", "x-model-version", "x-shape"}
        shape = [int(v) for v in r.headers["x-shape"].split(",")]
        assert shape[1:] == sample_shape and (shape[0] == n if not filtered else shape[0] <= n)
        if media_type == "application/x-npy":
            x = np.load(io.BytesIO(r.content), allow_pickle=False)
            assert x.dtype == np.float32 and list(x.shape) == shape and np.isfinite(x).all()
        else:
            assert media_type == "image/png" and r.content.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    "path, schema, requests, examples",
    [
        ("/sample", "SampleResponse", valid_sample_requests, 120),
        ("/interpolate", "InterpolateResponse", valid_interpolate_requests, None),
    ],
)
def test_valid_requests_all_succeed_with_documented_answers(client, documented, path, schema, requests, examples):
    """Every option /sample and /interpolate allow, in valid combinations: a 200 each time, and an
    answer of the documented type, consistent with the request (_check_answer)."""

    @settings(FUZZ_SETTINGS, **({"max_examples": examples} if examples else {}))
    @given(body=requests(documented["cards"]))
    def run(body):
        r = client.post(path, json=body)
        assert r.status_code == 200, (path, body, r.text)
        _check_answer(documented, path, schema, body, r)

    run()


def test_valid_score_requests_all_succeed_with_documented_answers(client, documented):
    """JSON and npy bodies of any count and finite values of the model's sample shape."""

    @FUZZ_SETTINGS
    @given(model=st.sampled_from(VALID_MODELS), n=st.integers(1, 24), as_npy=st.booleans(), data=st.data())
    def run(model, n, as_npy, data):
        shape = documented["cards"][model]["sample"]["shape"]
        x = np.asarray(
            data.draw(st.lists(FINITE, min_size=n * int(np.prod(shape)), max_size=n * int(np.prod(shape)))), np.float32
        ).reshape(n, *shape)
        if as_npy:
            buffer = io.BytesIO()
            np.save(buffer, x)
            r = client.post(
                "/score",
                params={"model": model},
                content=buffer.getvalue(),
                headers={"content-type": "application/x-npy"},
            )
        else:
            r = client.post("/score", json={"model": model, "samples": x.tolist()})
        assert r.status_code == 200, (model, n, as_npy, r.text)
        got = r.json()
        documented["validator"]("ScoreResponse").validate(got)
        assert got["model"] == model and got["n"] == n == len(got["realness"]) == len(got["logit"])

    run()
