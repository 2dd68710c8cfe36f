"""Reading ONNX values for the operators: element types, tensors of ints, attribute strings."""

from __future__ import annotations

import onnx
import torch

DTYPES = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.BOOL: torch.bool,
}


def ints(t: torch.Tensor | None) -> list[int] | None:
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
