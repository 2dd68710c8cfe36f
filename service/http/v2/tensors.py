"""Reading V2 inference requests and writing their answers: JSON tensors and the binary tensor
extension, as Triton defines them and `tritonclient.http` sends and reads them.

A request body is a JSON header, then (with the binary extension) the raw little-endian bytes of
each input that declares `parameters.binary_data_size`, in the order of the inputs. The
`Inference-Header-Content-Length` request header gives the JSON's length; without it the whole
body is JSON. Answers mirror that: outputs asked for as binary follow the JSON, whose length the
same header gives. Every fault of a request is a V2Error: the protocol's `{"error": "..."}`, 4xx.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import orjson
import pydantic_core

from service.core.encoding import DecodeError, finite_float32

# The card's dtypes (models/card.py DTYPES) as the protocol names them, with their wire dtype.
DATATYPES = {"float32": "FP32", "int64": "INT64"}
WIRE_DTYPES = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8")}
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_MEDIA_TYPE = "application/octet-stream"
# Parameters of the protocol's other extensions, which this server does not offer.
UNSUPPORTED_PARAMETERS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset", "classification")


class V2Error(ValueError):
    """A request the protocol's way of saying no: {"error": message} with a 4xx status."""

    def __init__(self, message: str, status: int = 400):
        self.message, self.status = message, status
        super().__init__(message)


@dataclass(frozen=True)
class TensorMeta:
    """One input or output of a V2 model: the batch axis is -1, the other axes fixed."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequest:
    id: Optional[str]
    inputs: dict[str, np.ndarray]  # name -> array, every one of the model's inputs, same batch
    outputs: list[tuple[str, bool]]  # (name, as binary) in the order asked, or every output


def decompressed(body: bytes, content_encoding: Optional[str], limit: int) -> bytes:
    """tritonclient can gzip or deflate its request body (not by default); never inflate past `limit`."""
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in ("gzip", "deflate"):
        raise V2Error(f"Content-Encoding {coding!r} is not supported (gzip, deflate or none)", 415)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise V2Error(f"the body is not valid {coding} data ({e})") from None
    if len(out) > limit:
        raise V2Error(f"the body inflates to more than the limit of {limit} bytes", 413)
    return out


def _header_length(value: Optional[str], body_length: int) -> int:
    if value is None:
        return body_length
    value = value.strip()
    if not value.isdigit() or int(value) > body_length:
        raise V2Error(
            f"{HEADER_LENGTH}: must be a whole number of bytes from 0 to the body's length "
            f"({body_length}), got {value!r}"
        )
    return int(value)


def _json_object(raw: bytes, what: str) -> dict:
    """pydantic's parser (jiter), as /sample's and /score's bodies are read, not orjson's: on inline
    tensor data it peaked at 6.4 MB against orjson's 55 MB for 200,704 values (4 MB of text), in half
    the time (12 against 23 ms, Xeon-AMX), and it gives the same floats. NaN and Infinity are
    not JSON; a number too large for a double reads as inf, which finite_float32 then refuses."""
    try:
        data = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as e:
        raise V2Error(f"{what} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise V2Error(f"{what} must be a JSON object")
    return data


def _parameters(entry: dict, where: str) -> dict:
    params = entry.get("parameters", {})
    if not isinstance(params, dict):
        raise V2Error(f"{where}.parameters: must be an object")
    for key in UNSUPPORTED_PARAMETERS:
        if key in params:
            raise V2Error(
                f"{where}.parameters.{key}: not supported by this server (no shared memory or classification extension)"
            )
    return params


def _shape(entry: dict, meta: TensorMeta, where: str, max_n: int) -> tuple[int, ...]:
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise V2Error(f"{where}.shape: must be a list of non-negative integers, got {shape!r}")
    want = [d if d >= 0 else "n" for d in meta.shape]
    if len(shape) != len(meta.shape) or any(d >= 0 and s != d for s, d in zip(shape, meta.shape)):
        raise V2Error(f"{where}.shape: input {meta.name!r} takes shape {want}, got {shape}")
    if not 1 <= shape[0] <= max_n:
        raise V2Error(f"{where}.shape: the batch (first axis) must be 1 to {max_n}, got {shape[0]}")
    return tuple(shape)


def _from_json(data, meta: TensorMeta, shape: tuple[int, ...], where: str) -> np.ndarray:
    """`data` as the protocol allows it: a flat list in row-major order, or nested lists."""
    try:
        array = np.asarray(data, dtype=np.float64 if meta.datatype == "FP32" else None)
    except (ValueError, TypeError, OverflowError):
        raise V2Error(f"{where}.data: must be a (flat or nested) list of numbers") from None
    if meta.datatype == "INT64" and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer)):
        if array.size:  # an empty list is refused below, by its size
            raise V2Error(f"{where}.data: INT64 input {meta.name!r} takes integers")
    if array.size != math.prod(shape):
        raise V2Error(f"{where}.data: holds {array.size} values, shape {list(shape)} needs {math.prod(shape)}")
    return array.reshape(shape).astype(WIRE_DTYPES[meta.datatype])


def parse_request(
    body: bytes, header_length: Optional[str], inputs: list[TensorMeta], outputs: list[TensorMeta], max_n: int
) -> InferRequest:
    """The request for a model with these inputs and outputs; V2Error naming what is wrong."""
    json_length = _header_length(header_length, len(body))
    head = _json_object(body[:json_length], "the inference header")
    binary, offset = memoryview(body)[json_length:], 0
    declared = {m.name: m for m in inputs}
    entries = head.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise V2Error("inputs: must be a non-empty list")
    arrays: dict[str, np.ndarray] = {}
    for i, entry in enumerate(entries):
        where = f"inputs[{i}]"
        if not isinstance(entry, dict):
            raise V2Error(f"{where}: must be an object")
        name = entry.get("name")
        if name not in declared:
            raise V2Error(f"{where}.name: unknown input {name!r}; this model takes {', '.join(map(repr, declared))}")
        if name in arrays:
            raise V2Error(f"{where}.name: input {name!r} given twice")
        meta = declared[name]
        if entry.get("datatype") != meta.datatype:
            raise V2Error(f"{where}.datatype: input {name!r} is {meta.datatype}, got {entry.get('datatype')!r}")
        shape = _shape(entry, meta, where, max_n)
        size = entry_size = _parameters(entry, where).get("binary_data_size")
        if size is not None:
            need = math.prod(shape) * WIRE_DTYPES[meta.datatype].itemsize
            if not isinstance(size, int) or isinstance(size, bool) or size != need:
                raise V2Error(
                    f"{where}.parameters.binary_data_size: shape {list(shape)} of {meta.datatype} "
                    f"takes {need} bytes, got {entry_size!r}"
                )
            if offset + size > len(binary):
                raise V2Error(
                    f"{where}: its {size} binary bytes are missing (the body holds {len(binary) - offset} "
                    f"more after the header of {json_length} bytes)"
                )
            array = np.frombuffer(binary[offset : offset + size], dtype=WIRE_DTYPES[meta.datatype]).reshape(shape)
            offset += size
        elif "data" in entry:
            array = _from_json(entry["data"], meta, shape, where)
        else:
            raise V2Error(f"{where}: no data (give `data`, or `parameters.binary_data_size` and binary bytes)")
        if meta.datatype == "FP32":
            try:
                array = finite_float32(array, f"{where}.data")
            except DecodeError as e:
                raise V2Error(str(e)) from None
        arrays[name] = array
    if offset != len(binary):
        raise V2Error(f"the body holds {len(binary) - offset} bytes after the header and the inputs' binary data")
    missing = [name for name in declared if name not in arrays]
    if missing:
        raise V2Error(f"inputs: missing {', '.join(map(repr, missing))}")
    if len({a.shape[0] for a in arrays.values()}) > 1:
        raise V2Error(
            f"inputs: every input must have the same batch size, got { {n: a.shape[0] for n, a in arrays.items()} }"
        )
    params = _parameters(head, "request")
    binary_default = params.get("binary_data_output", False) is True
    return InferRequest(_request_id(head), arrays, _outputs(head, outputs, binary_default))


def _request_id(head: dict) -> Optional[str]:
    request_id = head.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2Error("id: must be a string")
    return request_id


def _outputs(head: dict, outputs: list[TensorMeta], binary_default: bool) -> list[tuple[str, bool]]:
    asked = head.get("outputs")
    if asked is None:
        return [(m.name, binary_default) for m in outputs]
    if not isinstance(asked, list):
        raise V2Error("outputs: must be a list")
    known, chosen = {m.name for m in outputs}, []
    for i, entry in enumerate(asked):
        if not isinstance(entry, dict) or entry.get("name") not in known:
            name = entry.get("name") if isinstance(entry, dict) else entry
            raise V2Error(
                f"outputs[{i}].name: unknown output {name!r}; this model gives {', '.join(map(repr, sorted(known)))}"
            )
        binary = _parameters(entry, f"outputs[{i}]").get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise V2Error(f"outputs[{i}].parameters.binary_data: must be true or false")
        chosen.append((entry["name"], binary))
    return chosen


def encode_response(
    model_name: str,
    version: str,
    request_id: Optional[str],
    results: dict[str, np.ndarray],
    metas: dict[str, TensorMeta],
    wanted: list[tuple[str, bool]],
) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: JSON outputs inline, binary ones after the JSON."""
    outputs, chunks = [], []
    for name, binary in wanted:
        array = np.ascontiguousarray(results[name], dtype=WIRE_DTYPES[metas[name].datatype])
        entry = {"name": name, "datatype": metas[name].datatype, "shape": list(array.shape)}
        if binary:
            raw = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1)
        outputs.append(entry)
    head = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        head["id"] = request_id
    text = orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return text, {"content-type": "application/json"}
    return b"".join([text, *chunks]), {"content-type": BINARY_MEDIA_TYPE, HEADER_LENGTH: str(len(text))}
