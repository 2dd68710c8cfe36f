"""The Open Inference Protocol (service/v2) on a real `python -m service serve`, driven by
`tritonclient.http` (a client no one here wrote) with its defaults, and by raw requests for the
faults tritonclient would never send. Answers must equal /sample's for the same latents."""

from __future__ import annotations

import io
import json
import shutil

import httpx
import numpy as np
import pytest

from tests.servers import start_server
from tests.service.model_factory import make_model
from tests.service.support import DEFAULT, TOKEN, real_server_env

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
G, D = f"{DEFAULT}.generator", f"{DEFAULT}.discriminator"


@pytest.fixture(scope="module")
def server(tiny_models_dir, tmp_path_factory):
    """tiny-digits (trained), a conditional model, a generator-only one and one whose z is (dim, 1, 1)."""
    root = tmp_path_factory.mktemp("v2")
    models = root / "models"
    shutil.copytree(tiny_models_dir / DEFAULT, models / DEFAULT)
    make_model(models, "cond", classes=3, shape=(1, 4, 4), z_dim=6)
    make_model(models, "gonly", discriminator=False, shape=(3, 4, 4), z_dim=5)
    make_model(models, "dcgan-like", latent_shape=[5, 1, 1], shape=(3, 4, 4), z_dim=5, distribution="normal")
    with start_server(models, real_server_env(models, root), root) as running:
        yield running.url


@pytest.fixture(scope="module")
def triton(server):
    client = tritonclient_http.InferenceServerClient(server.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, headers=AUTH, timeout=60) as client:
        yield client


def _h() -> dict:
    """Fresh headers per call: tritonclient writes Inference-Header-Content-Length into the dict it
    is given, so a shared one would carry one binary request's length into the next request."""
    return dict(AUTH)


def _sample(http, **body) -> tuple[np.ndarray, dict]:
    answer = http.post("/sample", json={**body, "format": "json"})
    assert answer.status_code == 200, answer.text
    return np.asarray(answer.json()["samples"], np.float32), answer.json()


def _latents(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, dim)).astype(np.float32)


def test_health_is_open_and_metadata_lists_every_graph(triton, server):
    assert triton.is_server_live() and triton.is_server_ready()  # no token: the probes are open
    assert httpx.get(f"{server}/v2").status_code == 401  # the rest of /v2 is guarded
    meta = triton.get_server_metadata(headers=_h())
    assert meta["name"] == "ganserve" and "binary_tensor_data" in meta["extensions"]
    g = triton.get_model_metadata(G, headers=_h())
    version = httpx.get(f"{server}/models", headers=_h()).json()["models"][-1]["version"]  # tiny-digits sorts last
    assert g["versions"] == [version] and g["platform"] == "onnxruntime_onnx"
    assert g["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 8]}]
    assert g["outputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    d = triton.get_model_metadata(D, model_version=version, headers=_h())
    assert d["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert d["outputs"][0]["shape"] == [-1, 1]
    cond = triton.get_model_metadata("cond.discriminator", headers=_h())
    assert [(i["name"], i["datatype"], i["shape"]) for i in cond["inputs"]] == [
        ("x", "FP32", [-1, 1, 4, 4]),
        ("c", "INT64", [-1]),
    ]
    assert triton.get_model_metadata("dcgan-like.generator", headers=_h())["inputs"][0]["shape"] == [-1, 5, 1, 1]
    assert triton.is_model_ready(G, headers=_h()) and triton.is_model_ready("gonly.generator", headers=_h())
    assert not triton.is_model_ready("gonly.discriminator", headers=_h())
    assert not triton.is_model_ready(G, model_version="000000000000", headers=_h())


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_sample_for_the_same_latents(triton, http, binary):
    z = _latents(5, 8)
    want, answer = _sample(http, latents=z.tolist())
    tensor = tritonclient_http.InferInput("z", [5, 8], "FP32").set_data_from_numpy(z, binary_data=binary)
    outputs = [tritonclient_http.InferRequestedOutput("x", binary_data=binary)]
    result = triton.infer(G, [tensor], outputs=outputs, request_id="r1", headers=_h())
    np.testing.assert_array_equal(result.as_numpy("x"), want)
    response = result.get_response()
    assert response["model_version"] == answer["version"] and response["id"] == "r1"
    # The discriminator's logits are /score's.
    scored = http.post(
        f"/score?model={DEFAULT}", content=_npy(want), headers={"content-type": "application/x-npy"}
    ).json()
    x = tritonclient_http.InferInput("x", list(want.shape), "FP32").set_data_from_numpy(want, binary_data=binary)
    logits = triton.infer(D, [x], headers=_h()).as_numpy("logit")  # no outputs named: all, binary (client default)
    assert logits.shape == (5, 1)
    np.testing.assert_allclose(logits[:, 0], scored["logit"], rtol=1e-6)


def _npy(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()


def test_conditional_and_reshaped_latents(triton):
    z = _latents(4, 6, 1)
    c = np.array([0, 1, 2, 1], np.int64)
    inputs = [
        tritonclient_http.InferInput("z", [4, 6], "FP32").set_data_from_numpy(z),
        tritonclient_http.InferInput("c", [4], "INT64").set_data_from_numpy(c),
    ]
    x = triton.infer("cond.generator", inputs, headers=_h()).as_numpy("x")
    assert x.shape == (4, 1, 4, 4)
    np.testing.assert_raises(AssertionError, np.testing.assert_array_equal, x[1], x[3] + 1)  # sanity: real output
    c_json = tritonclient_http.InferInput("c", [4], "INT64").set_data_from_numpy(c, binary_data=False)
    again = triton.infer("cond.generator", [inputs[0], c_json], headers=_h()).as_numpy("x")
    np.testing.assert_array_equal(again, x)
    bad = tritonclient_http.InferInput("c", [4], "INT64").set_data_from_numpy(np.array([0, 1, 3, 0], np.int64))
    with pytest.raises(InferenceServerException, match=r"class indices") as e:
        triton.infer("cond.generator", [inputs[0], bad], headers=_h())
    assert e.value.status() == "400"
    z4 = _latents(2, 5).reshape(2, 5, 1, 1)
    out = triton.infer(
        "dcgan-like.generator",
        [tritonclient_http.InferInput("z", [2, 5, 1, 1], "FP32").set_data_from_numpy(z4)],
        headers=_h(),
    ).as_numpy("x")
    assert out.shape == (2, 3, 4, 4)


@pytest.mark.parametrize(
    "name, version, inputs, status, says",
    [
        (
            "nope.generator",
            "",
            [("z", [1, 8], "FP32")],
            "404",
            "unknown model 'nope.generator'; models here: cond.generator, cond.discriminator, ",
        ),
        ("tiny-digits", "", [("z", [1, 8], "FP32")], "404", "tiny-digits.generator"),
        ("gonly.discriminator", "", [("x", [1, 3, 4, 4], "FP32")], "404", "no discriminator"),
        (G, "000000000000", [("z", [1, 8], "FP32")], "404", "no version '000000000000'"),
        (G, "", [("latent", [1, 8], "FP32")], "400", "unknown input 'latent'"),
        (G, "", [("z", [1, 8], "FP64")], "400", "datatype"),
        (G, "", [("z", [1, 7], "FP32")], "400", "shape"),
        (G, "", [("z", [1, 8, 1], "FP32")], "400", "shape"),
        ("cond.generator", "", [("z", [2, 6], "FP32")], "400", "missing 'c'"),
        ("cond.generator", "", [("z", [2, 6], "FP32"), ("c", [3], "INT64")], "400", "same batch size"),
    ],
)
def test_bad_requests_get_the_protocols_error(triton, name, version, inputs, status, says):
    tensors = []
    for input_name, shape, dtype in inputs:
        array = np.zeros(shape, np.float64 if dtype == "FP64" else np.int64 if dtype == "INT64" else np.float32)
        tensors.append(tritonclient_http.InferInput(input_name, shape, dtype).set_data_from_numpy(array))
    with pytest.raises(InferenceServerException) as e:
        triton.infer(name, tensors, model_version=version, headers=_h())
    assert e.value.status() == status and says in e.value.message(), e.value.message()


def _raw(http, body: bytes, header_length=None, path=f"/v2/models/{G}/infer"):
    headers = {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
    return http.post(path, content=body, headers=headers)


def test_bad_bodies_are_4xx_with_an_error_line(http):
    z = _latents(2, 8)
    head = json.dumps(
        {"inputs": [{"name": "z", "datatype": "FP32", "shape": [2, 8], "parameters": {"binary_data_size": z.nbytes}}]}
    ).encode()
    short = json.dumps(
        {"inputs": [{"name": "z", "datatype": "FP32", "shape": [2, 8], "parameters": {"binary_data_size": 5}}]}
    ).encode()
    ok = _raw(http, head + z.tobytes(), len(head))
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/json"  # no binary output asked
    assert np.asarray(ok.json()["outputs"][0]["data"]).size == 2 * 64
    cases = [
        (_raw(http, head + z.tobytes()[:-4], len(head)), "binary bytes are missing"),
        (_raw(http, head + z.tobytes() + b"xxxx", len(head)), "bytes after the header"),
        (_raw(http, head + z.tobytes(), "12x"), "Inference-Header-Content-Length"),
        (_raw(http, head + z.tobytes(), 10**9), "Inference-Header-Content-Length"),
        (_raw(http, head[:-3] + z.tobytes(), len(head) - 3), "not valid JSON"),
        (_raw(http, short + z.tobytes()[:5], len(short)), "binary_data_size"),
        (
            _raw(
                http,
                json.dumps({"inputs": [{"name": "z", "datatype": "FP32", "shape": [2, 8], "data": [1] * 15}]}).encode(),
            ),
            "holds 15 values",
        ),
        (
            _raw(
                http, json.dumps({"inputs": [{"name": "z", "datatype": "FP32", "shape": [0, 8], "data": []}]}).encode()
            ),
            "batch",
        ),
        (_raw(http, b'{"inputs": "z"}'), "inputs"),
        (
            _raw(
                http,
                json.dumps(
                    {
                        "inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 8], "data": [0] * 8}],
                        "outputs": [{"name": "y"}],
                    }
                ).encode(),
            ),
            "unknown output 'y'",
        ),
        (http.post(f"/v2/models/{G}/infer", content=b"\x1f\x8b junk", headers={"Content-Encoding": "gzip"}), "gzip"),
        (http.get("/v2/models/x/stats"), "no route"),
    ]
    for answer, says in cases:
        assert 400 <= answer.status_code < 500, (says, answer.status_code, answer.text)
        assert list(answer.json()) == ["error"] and says in answer.json()["error"], (says, answer.text)
    assert http.post(f"/v2/models/{G}/infer", content=head, headers={"Authorization": "Bearer no"}).status_code == 401


def test_a_gzipped_request_and_the_versions_form(triton, http):
    z = _latents(3, 8, 2)
    want, answer = _sample(http, latents=z.tolist())
    tensor = tritonclient_http.InferInput("z", [3, 8], "FP32").set_data_from_numpy(z)
    result = triton.infer(
        G, [tensor], model_version=answer["version"], request_compression_algorithm="gzip", headers=_h()
    )
    np.testing.assert_array_equal(result.as_numpy("x"), want)
