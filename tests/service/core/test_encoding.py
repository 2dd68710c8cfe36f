"""Encoders and decoders: lossless JSON floats, .npy without pickles, PNG grids and images."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from service.core import encoding
from service.core.encoding import DecodeError


def test_json_floats_round_trip_float32_exactly_and_shortest():
    x = np.random.default_rng(0).random((3, 5)).astype(np.float32)
    text = encoding.json_bytes({"samples": x})
    back = np.asarray(json.loads(text)["samples"], dtype=np.float32)
    np.testing.assert_array_equal(back, x)  # no rounding
    assert b"0.1" in encoding.json_bytes({"v": np.float32([0.1])})  # not 0.10000000149011612
    assert b"0.10000000149" not in encoding.json_bytes({"v": np.float32([0.1])})


def test_json_writes_non_finite_values_as_null():
    assert json.loads(encoding.json_bytes({"v": np.float32([np.nan, np.inf, 1.0])})) == {"v": [None, None, 1.0]}


def test_json_array_refuses_ragged_non_numeric_and_non_finite():
    with pytest.raises(DecodeError, match="samples: .*rectangular"):
        encoding.json_array([[1, 2], [3]], "samples")
    with pytest.raises(DecodeError, match="samples: .*rectangular"):
        encoding.json_array([["a", "b"]], "samples")
    with pytest.raises(DecodeError, match="samples: must have 2 dimensions, got 1"):
        encoding.json_array([1, 2], "samples", dims=2)
    with pytest.raises(DecodeError, match="finite"):
        encoding.json_array([[1e300]], "samples")  # finite in float64, inf in float32


def test_npy_round_trip():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(encoding.npy_array(encoding.npy_bytes(x)), x)


@pytest.mark.parametrize("shape", [(0, 1, 28, 28), (0, 2), (3, 0)])
def test_npy_of_an_empty_answer_is_what_np_save_writes(shape):
    # a filter that kept nothing answers (0, *sample_shape): found by the fuzz floor as a 500
    x = np.zeros(shape, np.float32)
    buffer = io.BytesIO()
    np.save(buffer, x)
    assert encoding.npy_bytes(x) == buffer.getvalue()
    assert encoding.npy_array(encoding.npy_bytes(x)).shape == shape


def test_npy_of_other_numeric_dtypes_is_cast_to_float32():
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.uint8).reshape(2, 3))
    out = encoding.npy_array(buffer.getvalue())
    assert out.dtype == np.float32 and out.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_npy_with_pickled_objects_is_refused_not_unpickled():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DecodeError, match="body: not a readable .npy"):
        encoding.npy_array(buffer.getvalue())


@pytest.mark.parametrize("body", [b"", b"not numpy at all", b"\x93NUMPY\x01\x00garbage"])
def test_garbage_npy_is_a_decode_error(body):
    with pytest.raises(DecodeError, match="body"):
        encoding.npy_array(body)


def test_npz_archive_is_refused():
    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros(3))
    with pytest.raises(DecodeError, match="npz|readable"):
        encoding.npy_array(buffer.getvalue())


def test_png_grid_has_the_tiles_where_expected():
    images = np.zeros((5, 1, 4, 6), np.float32)
    images[4] = 1.0  # the fifth tile is white
    png = encoding.png_grid(images, (0.0, 1.0), nrow=2)
    grid = np.asarray(Image.open(io.BytesIO(png)))
    pad = encoding.GRID_PADDING
    assert grid.shape == (3 * (4 + pad) + pad, 2 * (6 + pad) + pad)  # 3 rows of 2 tiles, grayscale
    y, x = pad + 2 * (4 + pad), pad  # row 2, column 0
    assert (grid[y : y + 4, x : x + 6] == 255).all()
    assert grid.sum() == 255 * 4 * 6


def test_png_grid_of_colour_images_is_rgb():
    png = encoding.png_grid(np.full((2, 3, 4, 4), -1.0, np.float32), (-1.0, 1.0))
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGB"
        assert np.asarray(image).max() == 0


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_png_bytes_decode_to_the_same_pixels_in_pil(channels, mode, level):
    # Random bytes exercise the Sub filter's wrap-around (a byte smaller than its left neighbour).
    pixels = np.random.default_rng(level).integers(0, 256, (7, 13, channels), dtype=np.uint8)
    with Image.open(io.BytesIO(encoding.png_bytes(pixels, level))) as image:
        image.load()  # checks every chunk's CRC and the zlib stream
        assert (image.format, image.mode, image.size) == ("PNG", mode, (13, 7))
        decoded = np.asarray(image)
    np.testing.assert_array_equal(decoded.reshape(pixels.shape), pixels)


def test_png_bytes_refuses_other_channel_counts():
    with pytest.raises(ValueError, match="1 or 3 channels, got 4"):
        encoding.png_bytes(np.zeros((2, 2, 4), np.uint8))


def test_png_image_round_trips_pixels_into_the_value_range():
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8, 1) * 4
    x = encoding.png_image(encoding.png_bytes(pixels), [1, 8, 8], (-1.0, 1.0), "body")
    assert x.shape == (1, 8, 8)
    np.testing.assert_allclose(x[0], pixels[:, :, 0] / 255 * 2 - 1, atol=1e-6)


def test_png_image_of_the_wrong_size_names_both_sizes():
    png = encoding.png_bytes(np.zeros((5, 7, 1), np.uint8))
    with pytest.raises(DecodeError, match=r"images\[0\]: image is 7x5, the model takes 8x8"):
        encoding.png_image(png, [1, 8, 8], (0.0, 1.0), "images[0]")


def test_not_a_png_is_a_decode_error():
    jpeg = io.BytesIO()
    Image.new("L", (8, 8)).save(jpeg, format="JPEG")
    with pytest.raises(DecodeError, match="must be a PNG image, got JPEG"):
        encoding.png_image(jpeg.getvalue(), [1, 8, 8], (0.0, 1.0), "body")
    with pytest.raises(DecodeError, match="not a readable PNG"):
        encoding.png_image(b"hello", [1, 8, 8], (0.0, 1.0), "body")
