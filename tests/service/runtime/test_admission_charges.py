"""Admission's charge of a request against what the request really holds at its peak.

The charge is a formula (core/requests.py sample_charge and interpolate_charge, the format table's
bytes per value); these tests measure the peak instead of reading the formula: tracemalloc over
the whole request in a worker thread (latents, every rejection round of a filter, the samples, the
encoded answer), on the shipped mnist model, at every format, filtered and not. And a filtered
request that would fit only if charged as an unfiltered one must wait, then be refused.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path
from typing import Optional

import pytest

from tests.service.support import COND, DEFAULT, budget_held

REPO = Path(__file__).resolve().parents[3]
FACTOR = 20  # GANSERVE_MAX_DRAWS_FACTOR's default: a filter draws at most n x this


@pytest.fixture(scope="module")
def mnist(app):  # app: the test settings before any server module is imported
    from service.runtime.engine import Engine

    engine = Engine(REPO / "models", device="cpu", default_model="mnist", only="mnist")
    yield engine
    engine.executor.shutdown(wait=False)


def peak_bytes(work) -> int:
    """Peak bytes Python and numpy allocate while `work` runs, above what was held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - before


@pytest.mark.parametrize(
    "fields",
    [
        {"format": "npy"},
        {"format": "json", "scores": True},
        {"format": "png"},
        {"format": "npy", "dtype": "uint8"},
        {"format": "npy", "truncation": 0.5},
        {"format": "npy", "min_realness": 0.5},  # most of G's samples score lower: many rounds
        {"format": "npy", "drs": True},
        {"format": "json", "drs": True, "scores": True},
        {"format": "png", "min_realness": 0.3},
    ],
    ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()),
)
def test_a_sample_requests_charge_covers_what_it_holds_at_its_peak(mnist, fields):
    from service.core import requests
    from service.core.schemas import SampleRequest
    from service.http import handlers

    req = SampleRequest.model_construct(n=1024, seed=3, **fields)  # past the test settings' max n
    model = mnist.get("mnist")
    charge = requests.sample_charge(model, req, FACTOR)
    handlers.sample(mnist, req, FACTOR)  # warm: the first run of a shape plans in onnxruntime
    peak = peak_bytes(lambda: handlers.sample(mnist, req, FACTOR).body)
    assert peak <= charge, f"{fields}: peaked at {peak / 1e6:.1f} MB, charged {charge / 1e6:.1f} MB"


@pytest.mark.parametrize("fmt", ["npy", "json", "png"])
def test_a_one_sample_requests_charge_covers_its_formats_fixed_cost(mnist, fmt):
    """At n = 1 the per-value figures are nothing: what the encoder needs whatever n (png's deflate
    state) is what the charge must cover."""
    from service.core import requests
    from service.core.schemas import SampleRequest
    from service.http import handlers

    req = SampleRequest(n=1, seed=3, format=fmt)
    charge = requests.sample_charge(mnist.get("mnist"), req, FACTOR)
    handlers.sample(mnist, req, FACTOR)
    peak = peak_bytes(lambda: handlers.sample(mnist, req, FACTOR).body)
    assert peak <= charge, f"{fmt}: peaked at {peak / 1e3:.0f} kB, charged {charge / 1e3:.0f} kB"


@pytest.mark.parametrize("fmt", ["npy", "json", "png"])
def test_an_interpolate_requests_charge_covers_what_it_holds_at_its_peak(mnist, fmt):
    from service.core import requests
    from service.core.schemas import InterpolateRequest
    from service.http import handlers

    req = InterpolateRequest.model_construct(seeds=[1, 2], steps=1024, format=fmt, truncation=1.0)
    charge = requests.interpolate_charge(mnist.get("mnist"), req)
    handlers.interpolate(mnist, req)
    peak = peak_bytes(lambda: handlers.interpolate(mnist, req).body)
    assert peak <= charge, f"{fmt}: peaked at {peak / 1e6:.1f} MB, charged {charge / 1e6:.1f} MB"


@pytest.mark.parametrize("filter_", [{"min_realness": 0.0}, {"drs": True}])
def test_a_filtered_request_that_fits_only_unfiltered_waits_then_is_refused(client, monkeypatch, filter_):
    """Room for the request unfiltered but not for its rejection rounds: it waits for the budget,
    then gets a 503 with Retry-After; the same request unfiltered is served."""
    from service.core import requests
    from service.core.schemas import SampleRequest
    from service.service import ROUTES

    body = {"n": 200, "seed": 1, "format": "npy"}
    model = ROUTES.state.engine.get(DEFAULT)
    plain = requests.sample_charge(model, SampleRequest(**body), FACTOR)
    filtered = requests.sample_charge(model, SampleRequest(**body, **filter_), FACTOR)
    assert filtered > plain
    held = filtered  # another request in flight
    with budget_held(monkeypatch, held + (plain + filtered) // 2, held) as adm:
        refused = client.post("/sample", json={**body, **filter_})
        served = client.post("/sample", json=body)
    assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
    assert refused.json()["error"].startswith("server: ")
    assert served.status_code == 200, served.text
    assert (adm.in_flight, adm.in_flight_bytes) == (0, 0)


@pytest.mark.parametrize("kind, n", [("npy", None), ("npy", 1), ("json", None), ("json", 1), ("png", 1)])
def test_a_score_requests_charge_covers_what_it_holds_at_its_peak(mnist, kind, n):
    """POST /score is charged by its body's size and kind (admission.score_cost): measured over the
    route itself (parsing, the samples as float32, D's run, the answer) on a small app of its own."""
    import io

    import numpy as np
    from PIL import Image
    from starlette.applications import Starlette
    from starlette.routing import Route

    from service.core.schemas import MAX_N
    from service.http import routes
    from service.runtime import admission

    app = Starlette(routes=[Route("/score", routes.score, methods=["POST"])])
    app.state.engine = mnist
    x = np.random.default_rng(0).random((n or MAX_N, 1, 28, 28), dtype=np.float32)
    if kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, x, allow_pickle=False)
        body, content_type = buffer.getvalue(), "application/x-npy"
    elif kind == "json":
        body, content_type = json.dumps({"model": "mnist", "samples": x.tolist()}).encode(), "application/json"
    else:
        buffer = io.BytesIO()
        Image.fromarray((x[0, 0] * 255).astype(np.uint8)).save(buffer, format="PNG")
        body, content_type = buffer.getvalue(), "image/png"
    charge = admission.score_cost(len(body), kind)

    peak = route_peak(app, "/score", b"model=mnist", body, content_type)
    assert peak <= charge, f"{kind}: peaked at {peak / 1e6:.2f} MB, charged {charge / 1e6:.2f} MB"


def route_peak(app, path: str, query: bytes, body: bytes, content_type: str, headers: list | None = None) -> int:
    """Peak bytes of one request through `app`'s route, called as the server calls it, the body
    handed over as received (no client in this process to count); warmed by one request first,
    and both must answer 200."""
    statuses = []

    def post() -> None:
        sent = {}

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.setdefault("status", message.get("status"))

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
            + (headers or []),
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        loop.run_until_complete(app(scope, receive, send))
        statuses.append(sent["status"])

    loop = asyncio.new_event_loop()  # made before the measurement: the loop is the worker's, not the request's
    try:
        post()  # warm: the first run of a shape plans in onnxruntime
        peak = peak_bytes(post)
    finally:
        loop.close()
    assert statuses == [200, 200], statuses
    return peak


@pytest.mark.parametrize(
    "kind, fmt, refine",
    [("npy", "npy", 0), ("npy", "json", 0), ("npy", "npy", 64), ("json", "json", 16), ("png", "png", 16)],
)
def test_an_invert_requests_charge_covers_what_it_holds_at_its_peak(mnist, kind, fmt, refine):
    """POST /invert is charged as a /score of its body, raised once the body is decoded by its
    answer and its search (inversion.charge): measured over the route itself (decoding, E, the
    search's rounds, the answer) for a chunk of images the search holds at once (256)."""
    import io

    import numpy as np
    from PIL import Image
    from starlette.applications import Starlette
    from starlette.routing import Route

    from service.core import inversion
    from service.http import invert_routes
    from service.runtime import admission

    app = Starlette(routes=[Route("/invert", invert_routes.invert, methods=["POST"])])
    app.state.engine = mnist
    n = 1 if kind == "png" else inversion.MAX_BATCH // inversion.ROUND
    x = np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32)
    if kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, x, allow_pickle=False)
        body, content_type = buffer.getvalue(), "application/x-npy"
        query = f"model=mnist&format={fmt}&refine={refine}&seed=1"
    elif kind == "json":
        body = json.dumps({"model": "mnist", "samples": x.tolist(), "format": fmt, "refine": refine, "seed": 1})
        body, content_type, query = body.encode(), "application/json", ""
    else:
        buffer = io.BytesIO()
        Image.fromarray((x[0, 0] * 255).astype(np.uint8)).save(buffer, format="PNG")
        body, content_type = buffer.getvalue(), "image/png"
        query = f"model=mnist&format={fmt}&refine={refine}&seed=1"
    charge = admission.score_cost(len(body), kind) + inversion.charge(mnist.get("mnist"), n, fmt, refine)
    peak = route_peak(app, "/invert", query.encode(), body, content_type)
    assert peak <= charge, (
        f"{kind} -> {fmt}, refine {refine}: peaked at {peak / 1e6:.2f} MB, charged {charge / 1e6:.2f} MB"
    )


def test_an_invert_whose_search_does_not_fit_waits_then_is_refused(client, monkeypatch):
    """Room for decoding the body and answering it, not for the search's rounds: the request gives
    its first hold back, waits for the larger one, then gets a 503 with Retry-After, and holds
    nothing after; the same images without the search are inverted."""
    import io

    import numpy as np

    from service.core import inversion
    from service.runtime import admission
    from service.service import ROUTES

    model = ROUTES.state.engine.get(COND)  # has an encoder
    x = np.random.default_rng(1).random((64, *model.card.sample.shape), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=False)
    body = buffer.getvalue()
    first = admission.score_cost(len(body), "npy")
    plain = first + inversion.charge(model, len(x), "npy", 0)
    searched = first + inversion.charge(model, len(x), "npy", 64)
    assert searched > plain
    held = searched  # another request in flight: beside it the answer fits, the search does not
    headers = {"content-type": "application/x-npy"}
    with budget_held(monkeypatch, held + (plain + searched) // 2, held) as adm:
        refused = client.post(f"/invert?model={COND}&labels=2&format=npy&refine=64", content=body, headers=headers)
        served = client.post(f"/invert?model={COND}&labels=2&format=npy", content=body, headers=headers)
    assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
    assert refused.json()["error"].startswith("server: ")
    assert served.status_code == 200, served.text
    assert (adm.in_flight, adm.in_flight_bytes) == (0, 0)


def _v2_body(name: str, array, binary_in: bool, binary_out: bool, output: str) -> tuple[bytes, Optional[int]]:
    """An Open Inference Protocol request: the input inline or as binary data after the header, its
    output asked inline or binary; (body, the header's length when binary data follows)."""
    import numpy as np

    entry = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
    if binary_in:
        entry["parameters"] = {"binary_data_size": array.nbytes}
    else:
        entry["data"] = array.ravel().tolist()
    head = json.dumps(
        {"inputs": [entry], "outputs": [{"name": output, "parameters": {"binary_data": binary_out}}]}
    ).encode()
    if not binary_in:
        return head, None
    return head + np.ascontiguousarray(array, np.float32).tobytes(), len(head)


@pytest.mark.parametrize(
    "role, binary_in, binary_out",
    [
        ("generator", True, True),
        ("generator", False, False),
        ("generator", True, False),
        ("discriminator", False, False),
    ],
)
def test_a_v2_infers_charge_covers_what_it_holds_at_its_peak(mnist, role, binary_in, binary_out):
    """/v2/models/<m>.<role>/infer is charged as a /score of its body, raised once parsed by its
    answer (v2 routes.answer_cost): measured over the route itself at max n."""
    import numpy as np
    from starlette.applications import Starlette
    from starlette.routing import Route

    from service.core.schemas import MAX_N
    from service.http.v2 import routes as v2
    from service.runtime import admission

    app = Starlette(routes=[Route("/v2/models/{name}/infer", v2.infer, methods=["POST"])])
    app.state.engine = mnist
    model = mnist.get("mnist")
    inputs, outputs = v2.io_meta(model, role)
    rng = np.random.default_rng(0)
    shape = (MAX_N, *inputs[0].shape[1:])
    array = rng.standard_normal(shape, dtype=np.float32) if role == "generator" else rng.random(shape, dtype=np.float32)
    body, header = _v2_body(inputs[0].name, array, binary_in, binary_out, outputs[0].name)
    charge = admission.score_cost(len(body), "npy" if binary_in else "json") + v2.answer_cost(
        MAX_N, inputs, outputs, [(outputs[0].name, binary_out)]
    )
    extra = [] if header is None else [(b"inference-header-content-length", str(header).encode())]
    peak = route_peak(app, f"/v2/models/mnist.{role}/infer", b"", body, "application/octet-stream", extra)
    assert peak <= charge, (
        f"{role} {binary_in=} {binary_out=}: peaked at {peak / 1e6:.2f} MB, charged {charge / 1e6:.2f} MB"
    )


def test_a_v2_infer_that_does_not_fit_waits_then_is_refused_with_retry_after(client, monkeypatch):
    """The Open Inference Protocol's infer is under the same budget as /sample: with the worker's
    budget held, a large infer waits, then gets the protocol's 503 with Retry-After, holding
    nothing after; a small one beside the same holder is answered."""
    import numpy as np

    from service.core.schemas import MAX_N
    from service.http.v2 import routes as v2
    from service.runtime import admission
    from service.service import ROUTES

    model = ROUTES.state.engine.get(DEFAULT)
    inputs, outputs = v2.io_meta(model, "generator")
    wanted = [(outputs[0].name, True)]
    big, small = (np.zeros((k, *inputs[0].shape[1:]), np.float32) for k in (MAX_N, 1))
    (big_body, big_head), (small_body, small_head) = (
        _v2_body(inputs[0].name, z, True, True, outputs[0].name) for z in (big, small)
    )

    def cost(body, n):
        return admission.score_cost(len(body), "npy") + v2.answer_cost(n, inputs, outputs, wanted)

    held = cost(big_body, MAX_N)
    path = f"/v2/models/{DEFAULT}.generator/infer"
    with budget_held(monkeypatch, held + (cost(small_body, 1) + cost(big_body, MAX_N)) // 2, held) as adm:
        refused = client.post(path, content=big_body, headers={"Inference-Header-Content-Length": str(big_head)})
        served = client.post(path, content=small_body, headers={"Inference-Header-Content-Length": str(small_head)})
    assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
    assert refused.json()["error"].startswith("overloaded"), refused.text
    assert served.status_code == 200, served.text
    assert (adm.in_flight, adm.in_flight_bytes) == (0, 0)
