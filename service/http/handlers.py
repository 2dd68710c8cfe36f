"""Answers as HTTP responses: core/requests.py's work rendered in the request's format.

The format table (core/formats.py) says each format's media type and whether the answer's fields
go in the body (json) or as headers (npy, png: X-Model, X-Model-Version, X-Seed or X-Seeds,
X-Shape, and with a filter X-Requested, X-Drawn, X-Accepted, X-Exhausted and, for drs,
X-Drs-Gamma); ENCODERS holds the function that writes each format's body.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Union

import numpy as np
from starlette.responses import Response, StreamingResponse

from service.core import encoding, formats, labels, requests, sampling
from service.core.problems import RequestError
from service.core.requests import Answer
from service.core.schemas import InterpolateRequest, SampleRequest
from service.runtime import tracing
from service.runtime.engine import Engine
from service.runtime.metrics import count_samples

# JSON answers whose samples hold more values than this are streamed, a block of rows at a time
# (encoding.json_chunks), when the caller can send a stream (the HTTP routes): the whole text
# peaked at about twice the answer (orjson's growing buffer, then the answer), the stream at the
# samples plus a block or two. Smaller answers stay one body with a Content-Length: up to about
# two blocks a stream held as much as the whole answer (docs/PERFORMANCE.md#finding-json-stream;
# the peaks: #memory-per-request).
STREAM_MIN_VALUES = encoding.JSON_STREAM_MIN_VALUES

Body = Union[bytes, Iterator[bytes]]


def _json(answer: Answer, x: np.ndarray, meta: dict, stream: bool) -> Body:
    body = {**meta, "samples": x}
    if answer.classes is not None:
        body["labels"] = answer.classes
    if answer.logits is not None:
        body["realness"] = sampling.realness(answer.logits)
        body["logit"] = answer.logits.astype(np.float32)
    if answer.w is not None:
        body["w"] = np.ascontiguousarray(answer.w, dtype=np.float32)
    if stream and x.size > STREAM_MIN_VALUES:
        return encoding.json_chunks(body, "samples")
    return encoding.json_bytes(body)


def _npy(answer: Answer, x: np.ndarray, meta: dict, stream: bool) -> Body:
    return encoding.npy_bytes(x)


def _png_grid(answer: Answer, x: np.ndarray, meta: dict, stream: bool) -> Body:
    if len(x) == 0:
        raise RequestError(
            "min_realness", f"no sample passed the filter in {meta.get('drawn')} draws: nothing to draw a grid of", 422
        )
    card, nrow = answer.model.card, answer.nrow
    if answer.by_class and answer.classes is not None and nrow is None:
        x, nrow = labels.rows_by_class(x, answer.classes, card.condition.classes, card.sample.value_range[0])
    return encoding.png_grid(x, card.sample.value_range, nrow)


# core/formats.py's `encoder` names: (answer, samples as sent, fields, may stream) -> body
ENCODERS: dict[str, Callable[[Answer, np.ndarray, dict, bool], Body]] = {
    "json": _json,
    "npy": _npy,
    "png_grid": _png_grid,
}


def respond(answer: Answer, stream: bool = False) -> Response:
    """The answer in its format. `stream`: a large json answer may be a StreamingResponse
    (chunked, no Content-Length), its text made as it is sent; the caller must keep what it holds
    for the request (its admission) until the body has been sent."""
    model, x, spec = answer.model, answer.samples, formats.get(answer.format)
    count_samples(model.name, answer.count)
    meta = {"model": model.name, "version": model.card.version, **answer.meta, "shape": [answer.count, *x.shape[1:]]}
    if not spec.grid:  # a grid is 8-bit pixels whatever the dtype
        if answer.dtype == "uint8":
            x = encoding.to_uint8(x, model.card.sample.value_range)
        meta["dtype"] = answer.dtype
    headers = None
    if not spec.fields_in_body:
        headers = {
            f"X-{k.replace('_', '-').title()}": _header_value(v)
            for k, v in meta.items()
            if v is not None and k != "version"
        }
        headers["X-Model-Version"] = model.card.version
        if answer.classes is not None:
            headers[labels.HEADER] = labels.header_value(answer.classes)
    if answer.more_blocks is not None:
        return _block_stream(answer, x, spec.media_type, headers)
    with tracing.phase("encode"):  # a streamed json answer makes its text while it is sent
        body = ENCODERS[spec.encoder](answer, x, meta, stream)
    if not isinstance(body, bytes):
        return StreamingResponse(body, media_type=spec.media_type, headers=headers)
    return Response(body, media_type=spec.media_type, headers=headers)


def _block_stream(answer: Answer, first: np.ndarray, media_type: str, headers: dict) -> Response:
    """A streamed answer (core/streaming.py) as one .npy body: its header, then each block's rows
    from the block's own buffer as it comes. The size is known up front, so the body goes with a
    Content-Length (no chunked encoding) and a client can tell an answer cut short."""
    header = encoding.npy_header((answer.count, *first.shape[1:]), answer.dtype)
    size = len(header) + answer.count * math.prod(first.shape[1:]) * (1 if answer.dtype == "uint8" else 4)
    value_range = answer.model.card.sample.value_range

    async def body() -> AsyncIterator[Union[bytes, memoryview]]:
        yield header
        yield encoding.npy_rows(first)  # already in the answer's dtype (respond)
        async for block in answer.more_blocks:
            yield encoding.npy_rows(encoding.to_uint8(block, value_range) if answer.dtype == "uint8" else block)

    return StreamingResponse(body(), media_type=media_type, headers={**headers, "Content-Length": str(size)})


def _header_value(v) -> str:
    if isinstance(v, bool):  # as JSON spells it, not Python's True / False
        return "true" if v else "false"
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def sample(engine: Engine, req: SampleRequest, max_draws_factor: int, stream: bool = False) -> Response:
    """POST /sample in a worker thread (any request). `stream`: see respond."""
    return respond(requests.sample(engine, req, max_draws_factor), stream)


async def sample_async(engine: Engine, req: SampleRequest, max_draws_factor: int, alone: bool = False) -> Response:
    """POST /sample from the event loop (requests.sample_async); what goes to a worker thread is
    rendered there, and a large json answer streams."""
    return await requests.sample_async(engine, req, max_draws_factor, respond, alone)


def interpolate(engine: Engine, req: InterpolateRequest, stream: bool = False) -> Response:
    """POST /interpolate (in a worker thread). `stream`: see respond."""
    return respond(requests.interpolate(engine, req), stream)
