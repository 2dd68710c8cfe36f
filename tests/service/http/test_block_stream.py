"""Large npy answers computed and sent block by block (core/streaming.py, GANSERVE_STREAM_BLOCK_ROWS):
the bytes of the answer served whole, with its Content-Length, the graph running the next block
while one is sent. The tests' settings stream npy answers of 64 samples and more in blocks of 32
rows (tests/service/support.py), so every npy test of that size takes this path too."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest

from service.runtime import admission
from service.runtime.admission import Admission
from tests.service.http.asgi import post_to_routes
from tests.service.reference import Reference
from tests.service.support import COND, DEFAULT, TOKEN

ROWS = 32  # GANSERVE_STREAM_BLOCK_ROWS under test
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _service():
    """Imported once the app fixture has set the test settings (schemas reads GANSERVE_MAX_N)."""
    from service.core import requests, streaming
    from service.core.schemas import SampleRequest
    from service.http import handlers
    from service.service import ROUTES

    return requests, streaming, SampleRequest, handlers, ROUTES.state.engine


STREAMED = [
    {"model": DEFAULT, "n": 100, "seed": 7},
    {"model": DEFAULT, "n": 64, "seed": 2**64 - 1, "truncation": 0.6},
    {"model": DEFAULT, "n": 97, "seed": 3, "dtype": "uint8"},
    {"model": COND, "n": 70, "seed": 5, "labels": "balanced"},
    {"model": COND, "n": 65, "seed": 6},
]


@pytest.mark.parametrize("body", STREAMED, ids=[str(i) for i in range(len(STREAMED))])
def test_a_streamed_answer_is_the_whole_answers_bytes_with_its_length(client, service_models_dir, body):
    requests, streaming, SampleRequest, handlers, engine = _service()
    body = {**body, "format": "npy"}
    assert streaming.block_rows() == ROWS and streaming.streams("npy", body["n"], filtered=False)
    r = client.post("/sample", json=body)
    assert r.status_code == 200, r.text
    whole = handlers.sample(engine, SampleRequest.model_validate(body), 20)  # the thread path: never in blocks
    assert r.content == whole.body
    assert r.headers["content-length"] == str(len(r.content)) and "transfer-encoding" not in r.headers
    for name in ("x-shape", "x-seed", "x-dtype", "x-labels", "x-model-version"):
        assert r.headers.get(name) == dict(whole.headers).get(name), name

    expected = Reference(service_models_dir / body["model"]).sample(body)
    got = np.load(io.BytesIO(r.content))
    if body.get("dtype") == "uint8":
        assert np.array_equal(got, Reference(service_models_dir / body["model"]).uint8(expected.samples))
    else:
        np.testing.assert_allclose(got, expected.samples, atol=1e-6)
    if expected.labels is not None:
        assert r.headers["x-labels"] == ",".join(map(str, expected.labels.tolist()))


def test_explicit_latents_stream_too_and_other_requests_never_do(client):
    requests, streaming, SampleRequest, handlers, engine = _service()
    z = np.random.default_rng(1).standard_normal((80, engine.get(DEFAULT).card.latent.dim)).astype(np.float32)
    body = {"model": DEFAULT, "latents": z.tolist(), "format": "npy"}
    r = client.post("/sample", json=body)
    assert r.status_code == 200 and r.content == handlers.sample(engine, SampleRequest.model_validate(body), 20).body

    assert not streaming.streams("npy", 2 * ROWS - 1, filtered=False)  # fewer than two blocks
    assert not streaming.streams("npy", 100, filtered=True)  # a filter needs every draw's realness first
    assert not streaming.streams("json", 100, filtered=False)  # json streams its text (handlers.respond)
    assert not streaming.streams("png", 100, filtered=False)  # a grid needs every sample


@pytest.fixture
def watched_admission(app, monkeypatch):
    adm = Admission(budget=1 << 30, queue=8, wait_s=1.0, metrics=False)
    monkeypatch.setattr(admission, "_instance", adm)
    return adm


def test_one_message_per_block_and_admission_is_held_until_the_last(client, watched_admission):
    held = []

    def hook(message, messages):
        if message["type"] == "http.response.body":
            held.append((message.get("more_body", False), watched_admission.in_flight))

    messages = post_to_routes("/sample", {"model": DEFAULT, "n": 100, "seed": 1, "format": "npy"}, hook)
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    # the .npy header, 4 blocks (32, 32, 32, 4 rows), the end of the body
    assert [len(m["body"]) for m in bodies[1:-1]] == [32 * 64 * 4] * 3 + [4 * 64 * 4]
    assert bodies[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert all(in_flight == 1 for more, in_flight in held if more)
    assert (watched_admission.in_flight, watched_admission.in_flight_bytes) == (0, 0)


def test_a_client_that_leaves_mid_stream_gives_its_admission_back(client, watched_admission):
    def leave_after_the_first_block(message, messages):
        if message["type"] == "http.response.body" and len(messages) == 3:  # start, header, block 1
            raise OSError("the client went away")

    messages = post_to_routes(
        "/sample", {"model": DEFAULT, "n": 200, "seed": 1, "format": "npy"}, leave_after_the_first_block
    )
    assert len(messages) == 3
    assert (watched_admission.in_flight, watched_admission.in_flight_bytes) == (0, 0)
    assert client.post("/sample", json={"model": DEFAULT, "n": 100, "seed": 1, "format": "npy"}).status_code == 200


# --- over real HTTP ------------------------------------------------------------------------------


def test_over_http_the_body_comes_whole_with_its_length(real_server, service_models_dir):
    body = {"model": DEFAULT, "n": 256, "seed": 11, "format": "npy"}
    with httpx.Client(base_url=real_server, headers=AUTH, timeout=60) as http:
        with http.stream("POST", "/sample", json=body) as r:
            assert r.status_code == 200
            assert "transfer-encoding" not in r.headers
            raw = b"".join(r.iter_raw())
        assert len(raw) == int(r.headers["content-length"])
    got = np.load(io.BytesIO(raw))
    np.testing.assert_allclose(got, Reference(service_models_dir / DEFAULT).sample(body).samples, atol=1e-6)


def test_over_http_a_failure_after_the_first_block_cuts_the_body_short(real_server):
    # `faulty` fails on batches of odd size: blocks of 32, 32 and then 1 row, which fails after
    # the 200 has gone. The answer must not pass for complete: it ends short of its length.
    with httpx.Client(base_url=real_server, headers=AUTH, timeout=60) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/sample", json={"model": "faulty", "n": 65, "seed": 1, "format": "npy"})
        first_fails = http.post("/sample", json={"model": "faulty", "n": 1, "seed": 1, "format": "npy"})
        assert first_fails.status_code == 500 and "faulty" in first_fails.json()["error"]
        assert http.post("/sample", json={"model": DEFAULT, "n": 100, "seed": 1, "format": "npy"}).status_code == 200
