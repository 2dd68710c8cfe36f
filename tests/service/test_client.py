"""service.client.Client: against a real `python -m service serve` (answers equal the REST API's),
and against a small stdlib HTTP server that answers what a real one does under pressure (503 and
429 with Retry-After), to check the retries, the back-off and the token."""

from __future__ import annotations

import email.utils
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest

from service.client import Client, ClientError
from tests.service.support import DEFAULT, TOKEN

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

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        type(self).seen.append((time.monotonic(), self.headers.get("authorization")))
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
    _Stub.seen = []
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
