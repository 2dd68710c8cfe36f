"""service.client.Client: against a real `python -m service serve` (answers equal the REST API's;
`cacheable` samples by GET equal POST's), and against a small stdlib HTTP server that answers what
a real one does under pressure (503 and 429 with Retry-After) or what an older one does (405 to GET
/sample), to check the retries, the back-off, the token and the fall back to POST."""

from __future__ import annotations

import email.utils
import io
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest

import service.client.url_query
from service.client import Client, ClientError, sample_query
from tests.service.support import COND, DEFAULT, STYLE, TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.slow
def test_the_client_answers_what_the_api_answers(real_server):
    with Client(real_server, token=TOKEN) as gan, httpx.Client(base_url=real_server, headers=AUTH, timeout=30) as http:
        listing = gan.models()
        assert listing["default_model"] == DEFAULT and listing == http.get("/models").json()
        got = gan.sample(4, seed=9)
        want = http.post("/sample", json={"n": 4, "seed": 9}).json()
        np.testing.assert_array_equal(got.samples, np.asarray(want["samples"], np.float32))
        assert (got.model, got.version, got.seed) == (DEFAULT, want["version"], 9)
        assert gan.sample(2).seed is not None  # drawn by the server, returned
        z = np.full((2, 8), 0.25)
        np.testing.assert_array_equal(
            gan.sample(latents=z).samples,
            np.asarray(http.post("/sample", json={"latents": z.tolist()}).json()["samples"], np.float32),
        )
        filtered = gan.sample(6, seed=1, min_realness=0.2)
        assert filtered.drawn >= filtered.accepted == len(filtered.samples)
        scores = gan.score(got.samples)
        answer = http.post("/score", json={"samples": got.samples.tolist()}).json()
        np.testing.assert_allclose(scores.logit, answer["logit"], rtol=1e-6)
        assert scores.realness.shape == (4,) and scores.version == got.version
        assert gan.score(got.samples, version=got.version).version == got.version
        with pytest.raises(ClientError, match="has no version 'abc'"):
            gan.score(got.samples, version="abc")
        path = gan.interpolate(seeds=(1, 2), steps=5, model="tiny-ring")
        assert path.samples.shape == (5, 2) and path.seeds == (1, 2) and path.model == "tiny-ring"
        assert gan.sample(1, seed=1, version=got.version).version == got.version  # pinned, served
        with pytest.raises(ClientError, match="has no version '000000000000'") as e:
            gan.sample(1, version="000000000000")
        assert e.value.status == 404 and gan.failed_attempts == 0  # a 4xx is not retried
    with Client(real_server, token="wrong", retries=3) as gan:
        with pytest.raises(ClientError, match=r"refused \(HTTP 401\)"):
            gan.models()


class _Stub(BaseHTTPRequestHandler):
    """Answers each request with the next of `script`: (status, headers); 200 sends a tiny .npy."""

    script: list = []
    seen: list = []
    requests: list = []  # (method, path with its query) of each request

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        type(self).seen.append((time.monotonic(), self.headers.get("authorization")))
        type(self).requests.append((self.command, self.path))
        status, headers = type(self).script.pop(0)
        if headers.get("Retry-After") == "in 2 s as a date":  # made now; whole seconds: a wait of 1-2 s
            headers = {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)}
        body = b'{"error": "busy: try later"}'
        if status == 200:
            buffer = io.BytesIO()
            np.save(buffer, np.ones((1, 2), np.float32))
            body = buffer.getvalue()
            headers = {"X-Model": "m", "X-Model-Version": "v1", "X-Seed": "3", **headers}
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.seen, _Stub.requests = [], []
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_retries_honour_retry_after_in_seconds_and_as_a_date(stub):
    server, url = stub
    _Stub.script = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "in 2 s as a date"}), (200, {})]
    with Client(url, token="t0k", retries=3, backoff_s=0.01) as gan:
        got = gan.sample(1, seed=3)
    assert got.samples.shape == (1, 2) and (got.model, got.version, got.seed) == ("m", "v1", 3)
    (t0, auth), (t1, _), (t2, _) = _Stub.seen
    # busy answers with Retry-After are waited out, not counted as failures (no retry used up)
    assert auth == "Bearer t0k" and gan.failed_attempts == 0
    assert t1 - t0 >= 0.95  # Retry-After: 1, not the 0.01 s back-off
    assert t2 - t1 >= 0.9


def test_back_off_without_retry_after_is_capped_and_retries_run_out(stub):
    server, url = stub
    _Stub.script = [(500, {}), (503, {"Retry-After": "3600"}), (500, {}), (500, {})]
    start = time.monotonic()
    with Client(url, retries=2, backoff_s=0.05, max_backoff_s=0.3) as gan:
        with pytest.raises(ClientError, match=r"failed 4 time\(s\), giving up; last: .*HTTP 500 busy: try later"):
            gan.models()
    assert time.monotonic() - start < 3  # the hour's Retry-After capped at max_backoff_s
    # three failures used the three tries; the busy answer between them used none
    assert len(_Stub.seen) == 4 and gan.failed_attempts == 3


def test_busy_answers_are_waited_out_up_to_max_overloaded(stub):
    server, url = stub
    _Stub.script = [(503, {"Retry-After": "0"})] * 3
    with Client(url, retries=0, max_overloaded=2) as gan:
        with pytest.raises(ClientError, match=r"failed 3 time\(s\)"):
            gan.models()
    assert len(_Stub.seen) == 3 and gan.failed_attempts == 1


def test_stop_cuts_a_wait_short(stub):
    server, url = stub
    _Stub.script = [(503, {"Retry-After": "30"})]
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    with Client(url, retries=1, stop=stop) as gan:
        with pytest.raises(ClientError, match="giving up"):
            gan.models()
    assert time.monotonic() - start < 5


@pytest.mark.slow
def test_the_client_speaks_a_style_based_models_w_space(real_server):
    from tests.service.support import STYLE

    with Client(real_server, token=TOKEN) as gan, httpx.Client(base_url=real_server, headers=AUTH, timeout=30) as http:
        got = gan.sample(3, model=STYLE, seed=4, truncation_psi=0.6, mix=(8, 1), return_w=True)
        body = {"model": STYLE, "n": 3, "seed": 4, "truncation_psi": 0.6, "mix": {"seed": 8, "from_layer": 1}}
        want = http.post("/sample", json=body | {"return_w": True}).json()
        np.testing.assert_array_equal(got.samples, np.asarray(want["samples"], np.float32))
        np.testing.assert_array_equal(got.w, np.asarray(want["w"], np.float32))
        again = gan.sample(model=STYLE, w=got.w)  # npy, from the ws given back
        np.testing.assert_array_equal(again.samples, got.samples)
        walk = gan.interpolate(model=STYLE, seeds=(1, 2), steps=4, truncation_psi=0.5, labels=0)
        assert walk.samples.shape == (4, 3, 8, 8) and walk.headers["x-space"] == "w"


@pytest.mark.slow
def test_the_client_inverts_what_the_api_inverts(real_server):
    from tests.service.support import COND

    with Client(real_server, token=TOKEN) as gan, httpx.Client(base_url=real_server, headers=AUTH, timeout=30) as http:
        x = gan.sample(3, model=COND, seed=2, labels=1).samples
        got = gan.invert(x, model=COND, labels=1, refine=16, seed=3)
        want = http.post(
            "/invert", json={"model": COND, "samples": x.tolist(), "labels": 1, "refine": 16, "seed": 3}
        ).json()
        np.testing.assert_array_equal(got["reconstructions"], np.asarray(want["reconstructions"], np.float32))
        assert got["latents"].shape == (3, len(want["latents"][0])) and got["space"] == "z"


def test_sample_query_says_a_request_as_get_parses_it_or_refuses():
    body = {"model": "m", "n": 4, "seed": 2**64 - 1, "drs": True, "drs_gamma": -0.3, "format": "npy"}
    assert sample_query(body) == {
        "model": "m",
        "n": "4",
        "seed": "18446744073709551615",
        "drs": "true",
        "drs_gamma": "-0.3",
        "format": "npy",
    }
    assert sample_query({"labels": [0, 2, 1]}) == {"labels": "0,2,1"}
    assert sample_query({"labels": ["class1", 0]}) == {"labels": "class1,0"}
    assert sample_query({"labels": "balanced", "scores": False}) == {"labels": "balanced", "scores": "false"}
    assert sample_query({"labels": np.int64(2), "n": np.int64(3)}) == {"labels": "2", "n": "3"}
    # A float goes by repr, which parses back to the same double: the same request to the bit.
    rng = random.Random(5)
    for x in [0.1, 1 / 3, 5e-324, 1e300, -0.0, 0.7, *(rng.uniform(-50, 50) for _ in range(200))]:
        text = sample_query({"drs_gamma": x})["drs_gamma"]
        assert float(text) == x and math.copysign(1, float(text)) == math.copysign(1, x), text
    # What a query cannot say, or would say otherwise: POST.
    for body in (
        {"latents": [[0.0, 1.0]]},
        {"edit": [{"direction": "pc0", "amount": 1.0}]},
        {"mix": {"seed": 1, "from_layer": 2}},
        {"labels": [3]},  # a one-class list: GET reads one class for every sample
        {"labels": "7"},  # a class named "7": GET reads the index 7
        {"labels": ["a,b", "c"]},
        {"labels": [" a", "b"]},
        {"labels": [-1, 2]},
        {"labels": [True, False]},
        {"truncation": float("inf")},
    ):
        assert sample_query(body) is None, body


@pytest.mark.slow
def test_cacheable_samples_go_by_get_and_are_posts_bytes(real_server, monkeypatch):
    """The same requests by GET (their query) and by POST: the same samples to the byte, the same
    headers, and the same ETag, which hashes the request as the server parsed it; requests a query
    cannot carry, or whose URL would be too long, go by POST."""
    with Client(real_server, token=TOKEN) as gan:
        versions = {m["name"]: m["version"] for m in gan.models()["models"] if m["status"] == "ready"}
        cases = [
            dict(n=5, model=DEFAULT, seed=3),
            dict(n=5, model=DEFAULT, seed=3, truncation=0.7),
            dict(n=6, model=DEFAULT, seed=4, min_realness=0.25),
            dict(n=6, model=DEFAULT, seed=4, drs=True, drs_gamma=0.35),
            dict(n=4, model=COND, seed=8, labels=[2, 0, 1, 1]),
            dict(n=4, model=COND, seed=8, labels=["class2", "class0", "class1", "class1"]),
            dict(n=3, model=COND, seed=8, labels="balanced"),
            dict(n=3, model=COND, seed=8, labels=1),
            dict(n=2, model=STYLE, seed=1, truncation_psi=0.6, truncation_cutoff=2),
        ]
        for fields in cases:
            fields["version"] = versions[fields["model"]]
            got = gan.sample(**fields, cacheable=True)
            want = gan.sample(**fields)
            assert (got.method, want.method) == ("GET", "POST"), fields
            assert got.samples.dtype == np.float32 and got.samples.tobytes() == want.samples.tobytes(), fields
            assert (got.labels, got.drawn, got.accepted, got.seed) == (
                want.labels,
                want.drawn,
                want.accepted,
                fields["seed"],
            )
            for header in ("etag", "cache-control", "x-model-version", "x-shape"):
                assert got.headers.get(header) == want.headers.get(header), (header, fields)
            # Pinned and seeded: a cache may keep it for good (private: this server wants a token).
            assert got.headers["cache-control"] == "private, max-age=31536000, immutable"
        unpinned = gan.sample(2, model=DEFAULT, seed=3, cacheable=True)
        assert unpinned.method == "GET" and unpinned.headers["cache-control"] == "private, no-cache"
        edited = gan.sample(3, model=COND, seed=2, edit=[("pc0", 1.5)], version=versions[COND], cacheable=True)
        assert edited.method == "POST"
        assert gan.sample(1, model=COND, seed=2, labels=[2], cacheable=True).method == "POST"
        # A URL over the limit goes by POST, with the same answer.
        long_labels = dict(n=256, model=COND, seed=5, labels=[i % 3 for i in range(256)], version=versions[COND])
        by_get = gan.sample(**long_labels, cacheable=True)
        assert by_get.method == "GET"
        monkeypatch.setattr(service.client.url_query, "MAX_GET_URL_CHARS", 400)
        by_post = gan.sample(**long_labels, cacheable=True)
        assert by_post.method == "POST" and by_post.samples.tobytes() == by_get.samples.tobytes()
        # A refusal is the same ClientError, naming the pinned version.
        with pytest.raises(ClientError, match="has no version '000000000000'") as e:
            gan.sample(1, seed=1, version="000000000000", cacheable=True)
        assert e.value.status == 404 and str(e.value).startswith("GET ")


def test_a_server_without_get_sample_is_asked_by_post_from_then_on(stub):
    server, url = stub
    _Stub.script = [(405, {}), (200, {}), (200, {})]
    with Client(url, retries=0) as gan:
        first = gan.sample(1, seed=3, version="v1", cacheable=True)
        second = gan.sample(1, seed=4, version="v1", cacheable=True)
    assert (first.method, second.method) == ("POST", "POST") and first.samples.shape == (1, 2)
    methods = [m for m, _ in _Stub.requests]
    assert methods == ["GET", "POST", "POST"] and gan.failed_attempts == 0
    assert _Stub.requests[0][1] == "/sample?n=1&seed=3&version=v1&format=npy"
