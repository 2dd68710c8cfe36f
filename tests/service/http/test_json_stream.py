"""Large JSON answers of /sample and /interpolate go out as a stream, a block of rows at a time
(encoding.json_chunks, handlers.respond): byte for byte what orjson writes for the whole answer,
chunked (no Content-Length), with the request's admission held until the last block is sent or
the client has left. Small answers stay one body with a Content-Length (docs/PERFORMANCE.md#finding-json-stream)."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from service.core import encoding
from service.runtime import admission
from service.runtime.admission import Admission
from tests.servers import metric_sum, running, server_env
from tests.service.http.asgi import post_to_routes
from tests.service.support import COND, DEFAULT

RING = "tiny-ring"
REPO = Path(__file__).resolve().parents[3]
NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _array(shape, dtype, rng):
    if dtype == np.uint8:
        return rng.integers(0, 256, shape).astype(np.uint8)
    x = rng.standard_normal(shape).astype(dtype)
    if x.size > 3:  # JSON has no NaN or infinity: orjson writes null, and so must every block
        x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    return x


SHAPES = [(0, 1, 8, 8), (1, 1, 8, 8), (1000, 1, 8, 8), (37, 3, 4, 4), (513, 2), (100, 1), (2, 0)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.uint8], ids=["float32", "uint8"])
@pytest.mark.parametrize("block_values", [1, 64, 777, 1 << 20])
def test_the_chunks_are_orjsons_bytes_for_the_whole_answer(shape, dtype, block_values):
    rng = np.random.default_rng(sum(shape) + block_values)
    x = _array(shape, dtype, rng)
    k = shape[0]
    meta = {
        "model": 'm\u00e9 "q"',
        "version": "v1",
        "seed": 2**64 - 1,
        "shape": list(shape),
        "dtype": "float32",
        "requested": 3,
        "exhausted": False,
        "drs_gamma": None,
    }
    scores = {"realness": rng.random(k).astype(np.float32), "logit": rng.standard_normal(k).astype(np.float32)}
    for body in (
        {**meta, "samples": x},
        {**meta, "samples": x, "labels": rng.integers(0, 10, k)},
        {**meta, "samples": x, **scores},
        {**meta, "samples": x, "labels": np.arange(k), **scores},
        {"samples": x},
        {"samples": x, "logit": scores["logit"]},
    ):
        chunks = list(encoding.json_chunks(body, "samples", block_values))
        assert b"".join(chunks) == orjson.dumps(body, option=NUMPY)
        rows = max(1, block_values // max(1, int(np.prod(shape[1:]))))
        assert len(chunks) == 1 + max(0, -(-k // rows) - 1) + 1  # the head with the first block, the rest, the tail


def test_an_array_orjson_refuses_raises_before_any_chunk_is_taken():
    x = np.zeros((8, 6), np.float32)[:, ::2]  # not C-contiguous: orjson refuses it whole too
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps({"samples": x}, option=NUMPY)
    with pytest.raises(orjson.JSONEncodeError):
        encoding.json_chunks({"samples": x}, "samples", 4)  # at the call, not while streaming
    with pytest.raises(TypeError):
        encoding.json_chunks({"samples": [1, 2]}, "samples")


# --- the handlers, on the test models ----------------------------------------------------------


def _service():
    """handlers and schemas, imported once the app fixture has set the test settings (schemas reads
    GANSERVE_MAX_N when it is first imported)."""
    from service.core.schemas import InterpolateRequest, SampleRequest
    from service.http import handlers

    return handlers, SampleRequest, InterpolateRequest


def _run(response) -> tuple[dict, list[bytes]]:
    """An ASGI response run as a server runs it: (its start message, its body messages' bytes)."""
    start, bodies = {}, []

    async def receive():
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            start.update(message)
        else:
            bodies.append(message.get("body", b""))

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": "POST", "headers": []}
    asyncio.run(response(scope, receive, send))
    return start, bodies


@pytest.fixture
def small_streams(app, monkeypatch):
    """Streams from 1 value on, in blocks of 40 values: the test models' answers stream in many blocks."""
    handlers, _, _ = _service()
    monkeypatch.setattr(handlers, "STREAM_MIN_VALUES", 0)
    monkeypatch.setattr(encoding, "JSON_BLOCK_VALUES", 40)


SAMPLE_REQUESTS = [
    {"model": DEFAULT, "n": 9, "seed": 4},
    {"model": DEFAULT, "n": 9, "seed": 4, "scores": True},
    {"model": DEFAULT, "n": 9, "seed": 4, "dtype": "uint8"},
    {"model": DEFAULT, "n": 9, "seed": 4, "scores": True, "min_realness": 0.2},
    {"model": DEFAULT, "n": 1, "seed": 4},
    {"model": DEFAULT, "latents": [[0.0] * 8], "n": 1},
    {"model": RING, "n": 200, "seed": 5, "scores": True},
    {"model": COND, "n": 7, "seed": 6, "labels": "balanced", "scores": True},
]


@pytest.mark.parametrize("body", SAMPLE_REQUESTS, ids=[f"{i}" for i in range(len(SAMPLE_REQUESTS))])
def test_a_streamed_sample_answer_is_the_whole_answers_bytes(client, small_streams, body):
    handlers, SampleRequest, InterpolateRequest = _service()
    from service.service import ROUTES

    engine = ROUTES.state.engine
    if "latents" in body:
        body = {**body, "latents": [[0.0] * engine.get(body["model"]).card.latent.dim]}
    req = SampleRequest.model_validate({**body, "format": "json"})
    whole = handlers.sample(engine, req, 20)
    streamed = handlers.sample(engine, req, 20, stream=True)
    assert not hasattr(streamed, "body")  # a StreamingResponse: no body until it is sent
    start, bodies = _run(streamed)
    assert b"".join(bodies) == whole.body
    shape = json.loads(whole.body)["shape"]
    rows = max(1, 40 // int(np.prod(shape[1:])))  # rows per block
    assert len([b for b in bodies if b]) == 2 + max(0, -(-shape[0] // rows) - 1)  # a chunk per block, and the tail
    headers = dict(start["headers"])
    assert b"content-length" not in headers and headers[b"content-type"] == b"application/json"
    assert dict(whole.raw_headers)[b"content-length"] == str(len(whole.body)).encode()


def test_a_streamed_walk_is_the_whole_walks_bytes_and_other_formats_never_stream(client, small_streams):
    handlers, SampleRequest, InterpolateRequest = _service()
    from service.service import ROUTES

    engine = ROUTES.state.engine
    for body in ({"seeds": [1, 2], "steps": 11, "scores": True}, {"seeds": [3, 4], "steps": 5, "model": COND}):
        req = InterpolateRequest.model_validate({**body, "format": "json"})
        _, bodies = _run(handlers.interpolate(engine, req, stream=True))
        assert b"".join(bodies) == handlers.interpolate(engine, req).body
    for fmt in ("npy", "png"):
        r = handlers.sample(engine, SampleRequest(n=9, seed=4, format=fmt), 20, stream=True)
        assert r.body and dict(r.raw_headers)[b"content-length"] == str(len(r.body)).encode()


def test_below_the_threshold_a_json_answer_is_one_body(client):
    handlers, SampleRequest, InterpolateRequest = _service()
    from service.service import ROUTES

    engine = ROUTES.state.engine
    req = SampleRequest(n=9, seed=4)
    assert 9 * 64 <= handlers.STREAM_MIN_VALUES
    assert handlers.sample(engine, req, 20, stream=True).body == handlers.sample(engine, req, 20).body


# --- over the app's whole stack ----------------------------------------------------------------


@pytest.fixture
def large_is_small(monkeypatch, small_streams):
    """Every request counts as large: served in a thread, its json answer streamed."""
    from service.core import requests

    monkeypatch.setattr(requests, "LOOP_MAX_VALUES", 0)
    adm = Admission(budget=1 << 30, queue=8, wait_s=1.0, metrics=False)
    monkeypatch.setattr(admission, "_instance", adm)
    return adm


@pytest.mark.parametrize(
    "path,body", [("/sample", {"n": 30, "seed": 8, "scores": True}), ("/interpolate", {"seeds": [1, 2], "steps": 12})]
)
def test_the_routes_stream_through_every_middleware_and_hold_admission_until_the_last_block(
    client, large_is_small, path, body
):
    handlers, SampleRequest, InterpolateRequest = _service()
    from service.service import ROUTES

    answer = client.post(path, json=body)  # the whole stack: guard, timeout, access log, metrics
    assert answer.status_code == 200, answer.text
    assert "content-length" not in answer.headers
    schema = SampleRequest if path == "/sample" else InterpolateRequest
    handler = handlers.sample if path == "/sample" else handlers.interpolate
    args = (20,) if path == "/sample" else ()
    whole = handler(ROUTES.state.engine, schema.model_validate(body), *args)
    assert answer.content == whole.body
    assert (large_is_small.in_flight, large_is_small.in_flight_bytes) == (0, 0)

    # The route itself, its messages watched: the budget is held while any block is on its way.
    held = []

    def watch(message, messages):
        if message["type"] == "http.response.body":
            held.append((message.get("more_body", False), large_is_small.in_flight, len(message["body"])))

    post_to_routes(path, body, watch)
    assert len(held) >= 4 and all(more and flight == 1 for more, flight, _ in held[:-1]), held
    assert held[-1][0] is False
    assert (large_is_small.in_flight, large_is_small.in_flight_bytes) == (0, 0)  # released once sent


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_server(tmp_path_factory):
    """`bentoml serve` of the shipped MNIST model: its n = 1024 json answer (802,816 values) streams."""
    root = tmp_path_factory.mktemp("json-stream")
    models = root / "models"
    models.mkdir()
    shutil.copytree(REPO / "models" / "mnist", models / "mnist")
    env = server_env(
        {
            "GANSERVE_MODELS_DIR": str(models),
            "GANSERVE_DEFAULT_MODEL": "mnist",
            "GANSERVE_DEVICE": "cpu",
            "BENTOML_HOME": str(root / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
    )
    with running("json-stream", env, root, command="bentoml") as server:
        yield server


def _in_flight(url: str) -> float:
    return metric_sum(httpx.get(f"{url}/metrics", timeout=20).text, "ganserve_inflight_requests")


@pytest.mark.slow
def test_over_a_real_server_a_large_json_answer_is_chunked_and_holds_the_npy_answers_samples(mnist_server):
    url = mnist_server.url
    request = {"n": 1024, "seed": 11, "scores": True}
    with httpx.Client(base_url=url, timeout=120) as http:
        answer = http.post("/sample", json=request)
        assert answer.status_code == 200, answer.text
        assert answer.headers.get("transfer-encoding") == "chunked" and "content-length" not in answer.headers
        body = answer.json()
        assert body["shape"] == [1024, 1, 28, 28] and len(body["realness"]) == 1024
        as_npy = http.post("/sample", json={**request, "scores": False, "format": "npy"})
        samples = np.load(io.BytesIO(as_npy.content), allow_pickle=False)
        np.testing.assert_array_equal(
            np.asarray(body["samples"], dtype=np.float32), samples
        )  # shortest round-trip text
        small = http.post("/sample", json={"n": 8, "seed": 11})
        assert small.headers["content-length"] == str(len(small.content))
    # The access log line of the streamed answer is written once it has been sent.
    deadline = time.monotonic() + 10
    while "path=/sample" not in mnist_server.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, mnist_server.log_tail()
        time.sleep(0.2)

    # A client that leaves after the first bytes: the budget comes back all the same.
    with httpx.Client(base_url=url, timeout=120) as http:
        with http.stream("POST", "/sample", json={"n": 4096, "seed": 12}) as partial:
            assert partial.status_code == 200
            next(partial.iter_raw(65536))
    deadline = time.monotonic() + 20
    while _in_flight(url) != 0:
        assert time.monotonic() < deadline, "the admission of a request whose client left was not given back"
        time.sleep(0.2)
    assert mnist_server.alive()
