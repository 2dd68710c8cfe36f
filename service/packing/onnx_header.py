"""An ONNX file's IR version and default-domain opset, read straight from its protobuf bytes.

The card records both, and onnxruntime does not report them; the serving install has no `onnx`
package, and needs none for this: they are top-level fields of ModelProto (`ir_version` = 1, a
varint; `opset_import` = 8, repeated OperatorSetIdProto {domain = 1, version = 2}). The graph
(field 7, nearly the whole file) is skipped by its length, never parsed.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_DOMAINS = ("", "ai.onnx")
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class HeaderError(ValueError):
    """Bytes that are not an ONNX ModelProto."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise HeaderError("truncated varint")
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of each top-level field; LEN values as bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _varint(data, i)
        elif wire == _I64:
            value, i = data[i : i + 8], i + 8
        elif wire == _I32:
            value, i = data[i : i + 4], i + 4
        elif wire == _LEN:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise HeaderError("a field runs past the end of the file")
            value, i = data[i : i + size], i + size
        else:
            raise HeaderError(f"wire type {wire} is not protobuf's")
        yield number, wire, value


def read_versions(path: Path | str) -> tuple[int, int]:
    """(ir_version, opset of the default ONNX domain) of the model file at `path`."""
    data = Path(path).read_bytes()
    ir_version, opset = None, None
    for number, wire, value in _fields(data):
        if number == 1 and wire == _VARINT:
            ir_version = value
        elif number == 8 and wire == _LEN:
            domain, version = "", None
            for n, w, v in _fields(value):
                if n == 1 and w == _LEN:
                    domain = v.decode("utf-8", "replace")
                elif n == 2 and w == _VARINT:
                    version = v
            if domain in DEFAULT_DOMAINS and version is not None:
                opset = version
    if ir_version is None or opset is None:
        raise HeaderError("no ir_version or no default-domain opset_import: not an ONNX model")
    return ir_version, opset
