"""Every kind of bad input answers 4xx with a JSON body naming the field and the problem."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.service.support import DEFAULT, MAX_BODY, MAX_N

Z_DIM = 8  # tiny-digits' latent size (tests/conftest.py)


def assert_refused(r, status: int, error: str) -> dict:
    """The answer is a 4xx of `status` whose JSON names the problem (`error`) and lists each one."""
    assert r.status_code == status, r.text
    body = r.json()
    assert error in body["error"], body
    assert body["detail"] and body["detail"][0]["msg"]  # each problem listed with its location
    return body


@pytest.mark.parametrize(
    "request_body, status, error",
    [
        ({"model": "nope"}, 404, "model: unknown model 'nope'; models here: faulty, tiny-cond, tiny-digits, tiny-ring"),
        ({"model": "broken"}, 503, "model: model 'broken' is unavailable: "),
        ({"n": 0}, 400, "n: Input should be greater than or equal to 1"),
        ({"n": MAX_N + 1}, 400, f"n: Input should be less than or equal to {MAX_N}"),
        ({"n": "many"}, 400, "n: Input should be a valid integer"),
        ({"seed": -1}, 400, "seed: Input should be greater than or equal to 0"),
        ({"seed": 2**64}, 400, "seed: Input should be less than or equal to 18446744073709551615"),
        (
            {"latents": [[0.0] * (Z_DIM + 1)]},
            400,
            f"latents: each latent must have {Z_DIM} values for tiny-digits, got {Z_DIM + 1}",
        ),
        ({"latents": [[0.0] * Z_DIM, [0.0]]}, 400, "latents: must be a rectangular"),
        ({"latents": [[1e300] * Z_DIM]}, 400, "latents: must be finite"),
        ({"latents": []}, 400, "latents: must have 2 dimensions"),
        ({"latents": [[0.0] * Z_DIM], "seed": 1}, 400, "seed: give a seed or latents, not both"),
        ({"latents": [[0.0] * Z_DIM], "n": 2}, 400, "n: must equal the number of latents (1)"),
        ({"latents": [[0.0] * Z_DIM], "truncation": 1.0}, 400, "truncation: applies to drawn latents only"),
        ({"truncation": 0}, 400, "truncation: Input should be greater than or equal to 0.01"),
        ({"format": "gif"}, 400, "format: Input should be 'json', 'npy' or 'png'"),
        ({"model": "tiny-ring", "format": "png"}, 400, "format: png needs an image model; tiny-ring makes vectors"),
        ({"nrow": 4}, 400, "nrow: only applies to format png"),
        ({"scores": True, "format": "npy"}, 400, "scores: only with format json"),
        ({"min_realness": 1.5}, 400, "min_realness: Input should be less than or equal to 1"),
        ({"seeeed": 1}, 400, "seeeed: Extra inputs are not permitted"),
    ],
)
def test_bad_sample_requests(client, request_body, status, error):
    assert_refused(client.post("/sample", json=request_body), status, error)


@pytest.mark.parametrize(
    "raw, error",
    [
        (b"{bad json", "body: Invalid JSON"),
        (b'{"latents": [[1, NaN, 0, 0, 0, 0, 0, 0]]}', "latents.0.1: Input should be a finite number"),
        (b'{"truncation": Infinity}', "truncation: Input should be a finite number"),
        (b"[1, 2]", "body: Input should be"),
    ],
)
def test_malformed_json_bodies(client, raw, error):
    assert_refused(client.post("/sample", content=raw, headers={"content-type": "application/json"}), 400, error)


@pytest.mark.parametrize(
    "request_body, error",
    [
        ({"seeds": [1, 2], "latents": [[0.0] * Z_DIM] * 2}, "seeds: give two seeds or two latents, not both"),
        ({"seeds": [1]}, "seeds: List should have at least 2 items"),
        ({"steps": 1}, "steps: Input should be greater than or equal to 2"),
        ({"latents": [[0.0] * Z_DIM, [0.0] * 3]}, "latents: must be a rectangular"),
        ({"latents": [[0.0] * 3, [0.0] * 3]}, f"latents: each latent must have {Z_DIM} values"),
        ({"method": "cubic"}, "method: Input should be 'slerp' or 'lerp'"),
    ],
)
def test_bad_interpolate_requests(client, request_body, error):
    assert_refused(client.post("/interpolate", json=request_body), 400, error)


@pytest.mark.parametrize(
    "request_body, status, error",
    [
        # /interpolate's own checks (handlers.interpolate), not only the ones it shares with /sample.
        (
            {"latents": [[0.0] * Z_DIM] * 2, "truncation": 1.0},
            400,
            "truncation: applies to seeds only, not to explicit latents",
        ),
        ({"model": "tiny-ring", "format": "png"}, 400, "format: png needs an image model; tiny-ring makes vectors"),
        ({"model": "nope"}, 404, "model: unknown model 'nope'; models here: faulty, tiny-cond, tiny-digits, tiny-ring"),
        ({"model": "broken"}, 503, "model: model 'broken' is unavailable: "),
        ({"nrow": 2}, 400, "nrow: only applies to format png"),
        ({"scores": True, "format": "npy"}, 400, "scores: only with format json"),
    ],
)
def test_interpolate_refusals_of_its_own(client, request_body, status, error):
    assert_refused(client.post("/interpolate", json=request_body), status, error)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "kwargs, status, error",
    [
        (
            {"json": {"samples": [[0.5] * 8] * 8}},
            400,
            "samples: must have shape (n, 1, 8, 8) for tiny-digits, got (8, 8)",
        ),
        ({"json": {"samples": []}}, 400, "samples: must have shape"),
        (
            {"json": {"model": "tiny-ring", "samples": [[0.0, 0.0]] * (MAX_N + 1)}},
            400,
            f"samples: must hold 1 to {MAX_N} samples",
        ),
        ({"json": {"samples": [[[["x"] * 8] * 8]]}}, 400, "samples: must be a rectangular"),
        ({"json": {"model": "nope", "samples": [[0.0]]}}, 404, "model: unknown model 'nope'"),
        ({"json": {"sample": [[0.0]]}}, 400, "samples: Field required"),
        ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "body: Invalid JSON"),
        (
            {"content": _npy(np.zeros((2, 8, 8), np.float32)), "headers": {"content-type": "application/x-npy"}},
            400,
            "body: must have shape (n, 1, 8, 8) for tiny-digits, got (2, 8, 8)",
        ),
        (
            {
                "content": _npy(np.full((1, 1, 8, 8), np.nan, np.float32)),
                "headers": {"content-type": "application/x-npy"},
            },
            400,
            "body: must be finite",
        ),
        (
            {"content": b"\x93NUMPY garbage", "headers": {"content-type": "application/x-npy"}},
            400,
            "body: not a readable .npy",
        ),
        (
            {"content": _png(7, 5), "headers": {"content-type": "image/png"}},
            400,
            "body: image is 7x5, the model takes 8x8",
        ),
        ({"content": b"GIF89a not really", "headers": {"content-type": "image/png"}}, 400, "body: not a readable PNG"),
        (
            {"content": _png(8, 8), "headers": {"content-type": "image/png"}, "params": {"model": "tiny-ring"}},
            400,
            "content-type: PNG images need an image model; tiny-ring takes vectors",
        ),
        (
            {"files": [("a", ("a.png", _png(8, 8), "image/png")), ("b", ("b.png", _png(9, 9), "image/png"))]},
            400,
            "b[1]: image is 9x9",
        ),
        ({"data": {"model": DEFAULT}, "files": []}, 400, "body: the form holds no PNG file"),
        (
            {"files": [("a", ("a.png", _png(8, 8), "image/png"))], "data": {"colour": "red"}},
            400,
            "colour: unknown form field",
        ),
        (
            {"content": b"hello", "headers": {"content-type": "text/plain"}},
            415,
            "content-type: 'text/plain' is not accepted",
        ),
        # Starlette's form parser raises its own 400 HTTPException inside an app: once a 500 (the fuzzer found it).
        (
            {
                "content": b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xyz--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "body: malformed form",
        ),
        (
            {"files": [("f", (f"{i}.png", b"", "image/png")) for i in range(MAX_N + 1)]},
            400,
            f"body: malformed form (Too many files. Maximum number of files is {MAX_N}.)",
        ),
    ],
)
def test_bad_score_requests(client, kwargs, status, error):
    assert_refused(client.post("/score", **kwargs), status, error)


def test_a_body_over_the_limit_is_413_whether_announced_or_streamed(client):
    big = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
    body = assert_refused(
        client.post("/score", content=big, headers={"content-type": "application/json"}),
        413,
        f"body: the request body is over the limit of {MAX_BODY} bytes",
    )
    assert body["detail"][0]["loc"] == ["body"]

    def chunks():  # no content-length: the limit is counted as the body streams in
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    assert_refused(
        client.post("/sample", content=chunks(), headers={"content-type": "application/json"}),
        413,
        "body: the request body is over",
    )


@pytest.mark.parametrize(
    "headers, error",
    [
        ({"Authorization": ""}, "authorization: missing: send Authorization: Bearer <token>"),
        ({"Authorization": "Bearer wrong"}, "authorization: wrong bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "authorization: wrong bearer token"),
    ],
)
def test_api_routes_need_the_bearer_token(client, headers, error):
    for method, path in (("post", "/sample"), ("post", "/interpolate"), ("post", "/score"), ("get", "/models")):
        r = getattr(client, method)(path, headers=headers)
        assert_refused(r, 401, error)
        assert r.headers["www-authenticate"] == "Bearer"


def test_after_every_bad_request_the_server_still_serves(client):
    assert client.post("/sample", json={"n": 1}).status_code == 200
