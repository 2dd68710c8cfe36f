"""Arrays to and from the wire: JSON text, .npy bytes, PNG images and grids.

Decoders raise `DecodeError` with the request field they read, so the API can answer a 4xx that
names it. Nothing here unpickles: .npy bodies load with allow_pickle=False.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import zlib
from collections.abc import Iterator

import numpy as np
import orjson
from PIL import Image, UnidentifiedImageError

from service.core.formats import NPY_MEDIA_TYPE, PNG_MEDIA_TYPE  # noqa: F401  (the table names them once)

GRID_PADDING = 2  # pixels between tiles of a PNG grid
# zlib level of response grids. Level 6 (zlib's and PIL's default) takes longer for a grid of 1024
# MNIST digits than the generator's run; level 1 takes a fraction of that for a 21% larger file
# (254 vs 211 KB; docs/PERFORMANCE.md#finding-png-level).
GRID_COMPRESS_LEVEL = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DecodeError(ValueError):
    """Request content that cannot be turned into the array the model needs."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# --- JSON -------------------------------------------------------------------------------------


def json_bytes(payload: dict) -> bytes:
    """JSON for a response that may hold numpy arrays. orjson writes float32 arrays straight from
    their buffer with the shortest text that round-trips each float32 (no rounding, no Python
    floats: many times faster than json.dumps(array.tolist()) for a 4096 x 784 batch). Non-finite
    values, which JSON cannot carry, become null."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


# Values of the streamed array encoded at a time: 128 MNIST digits, ~1 MB of text (7-8 bytes per
# float32 value): enough orjson work that the one thread hop and one ASGI send per block cost little
# beside its encoding, and the text held at once stays a few MB whatever the answer's size
# (docs/PERFORMANCE.md#finding-json-stream).
JSON_BLOCK_VALUES = 1 << 17
# Answers above this many values are worth streaming: measured (bench/request_memory.py, MNIST),
# a stream's text and buffers take ~3 MB whatever the answer, the whole text ~11 bytes per value
# beyond the samples; they break even near two blocks (n = 256: a stream peaked at 4.5 MB, the
# whole answer at 3.0; n = 512: 4.6 against 5.9; n = 4096: 17.4 against 59.8;
# docs/PERFORMANCE.md#finding-json-stream).
JSON_STREAM_MIN_VALUES = 2 * JSON_BLOCK_VALUES


def json_chunks(payload: dict, key: str, block_values: int | None = None) -> Iterator[bytes]:
    """json_bytes(payload), byte for byte, in pieces: the fields before `key`, then the array
    payload[key] (n, ...) a block of rows at a time, then the fields after it. Only one block's
    text is held at once, never the whole answer (docs/PERFORMANCE.md#finding-json-stream).

    Byte equality holds because orjson writes every value without regard to what surrounds it:
    a dict's text is its fields' texts joined by commas in insertion order, and an array's text is
    its rows' texts joined by commas in brackets; the blocks are orjson's own text of row slices,
    brackets cut off. The head, the first block and the tail are encoded now, so that a field or
    an array orjson refuses raises here, before the caller has begun an answer (every block has
    the first's dtype and layout); the other blocks are encoded as they are taken."""
    keys = list(payload)
    at = keys.index(key)
    array = payload[key]
    if not isinstance(array, np.ndarray) or array.ndim == 0:
        raise TypeError(f"{key} must be an array of rows, got {type(array).__name__}")
    head = json_bytes({k: payload[k] for k in keys[:at]})  # b"{...}", or b"{}"
    tail = json_bytes({k: payload[k] for k in keys[at + 1 :]})
    opening = head[:-1] + (b"," if at else b"") + orjson.dumps(key) + b":["
    closing = b"]" + (b"," + tail[1:] if len(keys) > at + 1 else b"}")
    rows = max(1, (block_values or JSON_BLOCK_VALUES) // max(1, math.prod(array.shape[1:])))
    first = orjson.dumps(array[:rows], option=orjson.OPT_SERIALIZE_NUMPY)  # b"[row,row,...]", or b"[]"
    return _json_blocks(b"".join((opening, memoryview(first)[1:-1])), array, rows, closing)


def _json_blocks(opening: bytes, array: np.ndarray, rows: int, closing: bytes) -> Iterator[bytes]:
    yield opening
    del opening  # a block's text: not kept for the rest of the stream
    for i in range(rows, len(array), rows):
        text = orjson.dumps(array[i : i + rows], option=orjson.OPT_SERIALIZE_NUMPY)
        # One copy of the block's text, brackets cut off, after the comma that joins it on.
        yield b"".join((b",", memoryview(text)[1:-1]))
        del text
    yield closing


def json_array(value, field: str, dims: int | None = None) -> np.ndarray:
    """A (nested) JSON list of numbers as float32; ragged or non-numeric lists are a DecodeError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise DecodeError(field, "must be a rectangular (non-ragged) array of numbers") from None
    if dims is not None and array.ndim != dims:
        raise DecodeError(field, f"must have {dims} dimensions, got {array.ndim}")
    return finite_float32(array, field)


def finite_float32(array: np.ndarray, field: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DecodeError(field, f"must hold real numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused just below
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DecodeError(field, "must be finite (no NaN or infinity, also after casting to float32)")
    return array


# --- .npy -------------------------------------------------------------------------------------


def npy_bytes(array: np.ndarray) -> bytes:
    """The bytes np.save writes for `array` as float32 (uint8 stays uint8); the header is cached per shape (np.save
    builds it anew with a repr and a literal_eval check, a real share of a small request's time:
    docs/PERFORMANCE.md#finding-event-loop-route).
    One copy of the data: joined straight from the array's buffer (`header + array.tobytes()`
    made two, 3.0x the answer at its peak with the samples, now 2.0x; bench/request_memory.py)."""
    descr = _npy_descr(array)
    return b"".join((_npy_header(array.shape, descr), npy_rows(array)))


def _npy_descr(array: np.ndarray) -> str:
    return "|u1" if array.dtype == np.uint8 else "<f4"


def npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The .npy header of an array of `shape` in `dtype` ("float32" or "uint8"): what precedes
    its rows in a body sent block by block (core/streaming.py)."""
    return _npy_header(tuple(shape), "|u1" if dtype == "uint8" else "<f4")


def npy_rows(array: np.ndarray) -> memoryview:
    """The array's values as .npy stores them after the header (float32, uint8 kept), as a view
    of its own buffer: no copy when it is already contiguous float32 or uint8 (G's output is)."""
    array = np.ascontiguousarray(array, dtype=_npy_descr(array))
    # reshape(-1): a flat view casts for any shape, an empty answer's (0, ...) included (a
    # filter that kept nothing), which memoryview refuses to cast as it is.
    return memoryview(array.reshape(-1)).cast("B")


@functools.lru_cache(maxsize=1024)
def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def npy_array(body: bytes, field: str = "body") -> np.ndarray:
    """A .npy file's array, as finite float32. Object arrays (pickles) are refused."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DecodeError(field, f"not a readable .npy file ({e})") from None
    if not isinstance(array, np.ndarray):
        raise DecodeError(field, "must be a single .npy array, not an .npz archive")
    return finite_float32(array, field)


# --- PNG --------------------------------------------------------------------------------------


TO_UINT8_CHUNK = 1 << 16  # values converted at a time: a 256 KB float32 scratch buffer


def to_uint8(samples: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Samples in value_range -> 0..255 pixels; values outside the range are clipped.

    Converted in chunks through one small float32 buffer: the whole-array expression held three
    float32 temporaries the size of the samples (a png of 4096 MNIST digits peaked at 55x its
    answer, 38 MB of them temporaries). The same float32 operations per value: the same bytes."""
    lo, hi = value_range
    scale = 255.0 / (hi - lo)
    flat = np.ascontiguousarray(samples).reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    scratch = np.empty(min(TO_UINT8_CHUNK, flat.size), np.float32)
    for start in range(0, flat.size, TO_UINT8_CHUNK):
        chunk = flat[start : start + TO_UINT8_CHUNK]
        buf = scratch[: len(chunk)]
        buf[...] = chunk  # to float32 first, as astype(np.float32) did
        buf -= lo
        buf *= scale
        np.rint(buf, out=buf)
        np.clip(buf, 0, 255, out=buf)
        out[start : start + len(chunk)] = buf  # float32 -> uint8, as astype casts
    return out.reshape(samples.shape)


def png_grid(images: np.ndarray, value_range: tuple[float, float], nrow: int | None = None) -> bytes:
    """One PNG showing (n, C, H, W) images in rows of `nrow` tiles (default: a near-square grid)."""
    n, channels, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    pad = GRID_PADDING
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, channels), np.uint8)
    tiles = to_uint8(images, value_range).transpose(0, 2, 3, 1)  # (n, H, W, C)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = tile
    return png_bytes(canvas, GRID_COMPRESS_LEVEL)


def png_bytes(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """(H, W, 1 or 3) uint8 -> PNG bytes (8-bit grayscale or RGB), zlib level 0-9.

    Written here (signature, IHDR, one IDAT, IEND: the PNG spec's minimum) instead of through
    PIL, whose save path cost several times this writer's fixed cost per image before any
    compression, and whose row filters made digit grids larger and slower to compress (1024 MNIST
    digits at level 1: 258 KB, here 251 KB; docs/PERFORMANCE.md#finding-png-writer). Filters: None
    for grayscale (digits on black compress best unfiltered), Sub for colour (smooth colour images:
    a third smaller than None).
    """
    height, width, channels = pixels.shape
    if channels not in (1, 3):
        raise ValueError(f"PNG images here have 1 or 3 channels, got {channels}")
    rows = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(height, width * channels)
    scanlines = np.empty((height, 1 + width * channels), np.uint8)  # each row: filter type, then bytes
    if channels == 1:
        scanlines[:, 0] = 0  # None
        scanlines[:, 1:] = rows
    else:
        scanlines[:, 0] = 1  # Sub: each byte minus the same channel's byte one pixel left, mod 256
        scanlines[:, 1 : 1 + channels] = rows[:, :channels]
        np.subtract(rows[:, channels:], rows[:, :-channels], out=scanlines[:, 1 + channels :])
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)  # 8 bits, no interlace
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(memoryview(scanlines).cast("B"), compress_level))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_image(body: bytes, shape: list[int], value_range: tuple[float, float], field: str) -> np.ndarray:
    """A PNG of the model's size -> one sample (C, H, W) float32 in value_range.

    Grayscale models take any PNG converted to gray; colour models convert to RGB. The size must
    match exactly: resizing would score a different image than the one sent.
    """
    return read_png(body, shape, value_range, field)[0]


def read_png(
    body: bytes, shape: list[int], value_range: tuple[float, float], field: str, resize: bool = False
) -> tuple[np.ndarray, str | None]:
    """png_image, and where `resize` is asked, a PNG of another size resized to the model's
    (Lanczos, on the 8-bit pixels, as training/projection reads files): (the sample, the statement
    of what was resized from what, or None when the size already matched)."""
    channels, h, w = shape
    note = None
    try:
        with Image.open(io.BytesIO(body)) as image:
            if image.format != "PNG":
                raise DecodeError(field, f"must be a PNG image, got {image.format}")
            converted = image.convert("L" if channels == 1 else "RGB")
            if image.size != (w, h):
                if not resize:
                    raise DecodeError(
                        field,
                        f"image is {image.size[0]}x{image.size[1]}, the model takes {w}x{h} (width x height)",
                    )
                note = f"{field}: {image.size[0]}x{image.size[1]} -> {w}x{h} (Lanczos)"
                converted = converted.resize((w, h), Image.Resampling.LANCZOS)
            pixels = np.asarray(converted, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(field, "not a readable PNG image") from None
    pixels = pixels.reshape(h, w, channels).transpose(2, 0, 1)  # (C, H, W)
    lo, hi = value_range
    return (lo + pixels * ((hi - lo) / 255.0)).astype(np.float32), note
