"""The answer formats of /sample and /interpolate: the one table every other part reads.

To add a format, add one `OutputFormat` here and an encoder for it in `service/http/handlers.py`
`ENCODERS` (`respond(answer, stream)` turns an `Answer` into a body by the table's `encoder`). What reads the
table, and so needs no change:
- `core/schemas.py`: the request's `format` field accepts exactly these names;
- `core/requests.py`: a format's checks (image models only, png's `nrow`, json's `scores`) and its
  admission charge (`peak_bytes_per_value`);
- `http/handlers.py`: the media type, and whether the answer's fields go in the body or as headers;
- `http/openapi.py`: the media types /sample and /interpolate document.
`tests/service/core/test_formats.py` holds each of them to the table.
"""

from __future__ import annotations

from dataclasses import dataclass

NPY_MEDIA_TYPE = "application/x-npy"
PNG_MEDIA_TYPE = "image/png"
JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class OutputFormat:
    name: str
    media_type: str
    # Peak bytes a request allocates per sample value in this format: admission's charge
    # (runtime/admission.py). Measured with tracemalloc by bench/request_memory.py, rounded up,
    # since the estimate must not undercount (docs/PERFORMANCE.md#memory-per-request).
    peak_bytes_per_value: int
    # What the format costs whatever n: png's deflate state (zlib's window and hash chains, ~256 KiB,
    # allocated per compression), json's and npy's encoders' own buffers. Measured at n = 1
    # (tests/service/runtime/test_admission_charges.py), rounded up.
    fixed_peak_bytes: int
    image_only: bool  # only an image model's samples can be encoded (pixels, not vectors)
    grid: bool  # one image of all samples: `nrow` applies
    fields_in_body: bool  # the answer's fields (seed, shape, realness...) in the body, else as X- headers
    encoder: str  # the function of http/handlers.py ENCODERS that writes the body
    # The body is the samples' rows in order after a header of known size: a large answer is
    # computed and sent block by block (core/streaming.py), its Content-Length known up front.
    block_stream: bool = False


FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        # json: the float32 samples, ~7 bytes of text per value, and orjson's buffer as it grows. A
        # json answer the routes stream peaks lower while it is sent (the samples and a block or two
        # of text) but as high as npy while G runs (the micro-batcher's chunks and their
        # concatenation). It is charged at whole json's rate all the same: charged at npy's, three
        # n = 4096 json requests ran at once where one did, and a worker under the memory-limit test
        # passed its bound once (RSS grows faster than the bytes charged, and the graphs' activations
        # are not charged). The stream's lower peak is headroom instead.
        OutputFormat(
            "json", JSON_MEDIA_TYPE, 20, 32 * 1024, image_only=False, grid=False, fields_in_body=True, encoder="json"
        ),
        # npy: the samples and the answer's copy of them.
        OutputFormat(
            "npy",
            NPY_MEDIA_TYPE,
            10,
            16 * 1024,
            image_only=False,
            grid=False,
            fields_in_body=False,
            encoder="npy",
            block_stream=True,
        ),
        # png: the samples, 8-bit tiles, the canvas and its scanlines.
        OutputFormat(
            "png", PNG_MEDIA_TYPE, 10, 384 * 1024, image_only=True, grid=True, fields_in_body=False, encoder="png_grid"
        ),
    )
}
NAMES: tuple[str, ...] = tuple(FORMATS)
SCORE_FORMAT = "json"  # the one format that carries each sample's realness


def get(name: str) -> OutputFormat:
    return FORMATS[name]
