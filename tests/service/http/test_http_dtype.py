"""`dtype: "uint8"` on POST /sample: image samples as 0..255 pixels in json and npy, a quarter of
float32's bytes, mapped from the card's value range exactly as a png grid and `generate --dtype
uint8` map them (encoding.to_uint8), so every way of asking for pixels gives the same pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.core.encoding import GRID_PADDING, to_uint8
from tests.service.support import COND, DEFAULT

RING = "tiny-ring"


def npy(response) -> np.ndarray:
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def _post(client, **body):
    r = client.post("/sample", json={"model": DEFAULT, "n": 6, "seed": 31, **body})
    assert r.status_code == 200, r.text
    return r


def _value_range(client, name=DEFAULT):
    card = next(m for m in client.get("/models").json()["models"] if m["name"] == name)["card"]
    return tuple(card["sample"]["value_range"])


def test_npy_uint8_is_the_float_answer_mapped_to_pixels_in_a_quarter_of_the_bytes(client):
    floats = _post(client, format="npy")
    pixels = _post(client, format="npy", dtype="uint8")
    x, p = npy(floats), npy(pixels)
    assert p.dtype == np.uint8 and p.shape == x.shape
    assert np.array_equal(p, to_uint8(x, _value_range(client)))
    assert 0 < p.max() <= 255 and p.min() >= 0 and len(np.unique(p)) > 10  # real pixels, not a constant
    assert pixels.headers["X-Dtype"] == "uint8" and floats.headers["X-Dtype"] == "float32"
    # The data part is a quarter of float32's (the .npy header is the same size).
    assert len(floats.content) - len(pixels.content) == 3 * x.size


def test_json_uint8_carries_integers_and_says_so(client):
    body = _post(client, dtype="uint8", scores=True).json()
    floats = _post(client, scores=True).json()
    assert body["dtype"] == "uint8" and floats["dtype"] == "float32"
    pixels = np.array(body["samples"])
    assert pixels.dtype.kind == "i"  # JSON integers, not floats
    expected = to_uint8(np.array(floats["samples"], np.float32), _value_range(client))
    assert np.array_equal(pixels, expected)
    # Realness is D's verdict on the float samples G made, whatever the answer's encoding.
    assert body["realness"] == floats["realness"]


def test_uint8_pixels_equal_the_png_grids_pixels(client):
    pixels = npy(_post(client, format="npy", dtype="uint8", n=4))  # (4, 1, 8, 8)
    grid = _post(client, format="png", n=4, nrow=4)
    image = np.asarray(Image.open(io.BytesIO(grid.content)))  # one row of four tiles
    pad, h, w = GRID_PADDING, pixels.shape[2], pixels.shape[3]
    for i in range(4):
        x0 = pad + i * (w + pad)
        assert np.array_equal(image[pad : pad + h, x0 : x0 + w], pixels[i, 0])


def test_png_is_8_bit_anyway_so_uint8_is_accepted_there(client):
    assert _post(client, format="png", dtype="uint8").content == _post(client, format="png").content


def test_uint8_with_a_conditional_model_keeps_its_labels(client):
    r = client.post(
        "/sample", json={"model": COND, "n": 3, "seed": 2, "labels": "balanced", "dtype": "uint8", "format": "npy"}
    )
    assert r.status_code == 200 and npy(r).dtype == np.uint8 and r.headers["X-Labels"] == "0,1,2"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model": RING, "dtype": "uint8"}, "dtype"),  # vectors have no pixel range
        ({"dtype": "uint16"}, "dtype"),
        ({"dtype": "float64"}, "dtype"),
    ],
)
def test_bad_dtype_is_a_400_naming_it(client, body, field):
    r = client.post("/sample", json={"model": DEFAULT, "n": 2, **body})
    assert r.status_code == 400, r.text
    assert field in r.text
