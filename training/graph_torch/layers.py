"""The operators that compute a network's layers (Gemm, convolutions, pooling, Pad, Resize,
reductions, Softmax, Clip): their torch implementations and their part of the operator table (ops.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from training.graph_torch.errors import Unsupported
from training.graph_torch.values import ints, text


def _gemm(a, x, y, c=None):
    x = x.t() if a.get("transA", 0) else x
    y = y.t() if a.get("transB", 0) else y
    out = a.get("alpha", 1.0) * (x @ y)
    return out if c is None else out + a.get("beta", 1.0) * c


def _reduce(fn: Callable) -> Callable:
    def run(a, x, axes=None):
        dims = ints(axes) if axes is not None else a.get("axes")
        keep = bool(a.get("keepdims", 1))
        if not dims:
            if a.get("noop_with_empty_axes", 0):
                return x
            dims = list(range(x.dim()))
        return fn(x, dims, keep)

    return run


def _amax(x, dims, keep):
    return torch.amax(x, dim=dims, keepdim=keep)


def _sum(x, dims, keep):
    return torch.sum(x, dim=dims, keepdim=keep)


def _mean(x, dims, keep):
    return torch.mean(x, dim=dims, keepdim=keep)


def _l2(x, dims, keep):
    return torch.sqrt(torch.sum(x * x, dim=dims, keepdim=keep))


def _pads_2d(pads: list[int]) -> tuple[list[int], list[int] | None]:
    """ONNX pads (begin..., end...) -> a symmetric torch padding, or an explicit F.pad list."""
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    if begin == end:
        return begin, None
    explicit = []
    for b, e in zip(reversed(begin), reversed(end), strict=True):
        explicit += [b, e]
    return [0] * half, explicit


def _conv(a, x, w, b=None):
    spatial = w.dim() - 2
    padding, explicit = _pads_2d(a.get("pads", [0] * 2 * spatial))
    if explicit is not None:
        x = F.pad(x, explicit)
    conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
    return conv(
        x, w, b, stride=a.get("strides", 1), padding=padding, dilation=a.get("dilations", 1), groups=a.get("group", 1)
    )


def _conv_transpose(a, x, w, b=None):
    spatial = w.dim() - 2
    padding, _ = _pads_2d(a.get("pads", [0] * 2 * spatial))  # symmetric: checked at load
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[spatial - 1]
    return conv(
        x,
        w,
        b,
        stride=a.get("strides", 1),
        padding=padding,
        output_padding=a.get("output_padding", 0),
        groups=a.get("group", 1),
        dilation=a.get("dilations", 1),
    )


def _pool(kind: str) -> Callable:
    def run(a, x):
        padding, _ = _pads_2d(a.get("pads", [0] * 4))  # 2-D, symmetric, no auto_pad: checked at load
        kernel, stride = a["kernel_shape"], a.get("strides", 1)
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "MaxPool":
            return F.max_pool2d(x, kernel, stride, padding, a.get("dilations", 1), ceil_mode=ceil)
        include = bool(a.get("count_include_pad", 0))
        return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=include)

    return run


def _resize(a, x, roi=None, scales=None, sizes=None):
    mode = text(a.get("mode", "nearest"))
    coords = text(a.get("coordinate_transformation_mode", "half_pixel"))
    size = ints(sizes)[2:] if sizes is not None and sizes.numel() else None
    factors = [float(s) for s in scales.tolist()[2:]] if size is None else None
    if size is None:
        size = [int(math.floor(d * f)) for d, f in zip(x.shape[2:], factors, strict=True)]
    if mode == "nearest":  # asymmetric coordinates, floor: checked at load (refusals.refusal)
        return F.interpolate(x, size=size, mode="nearest")
    kind = {3: "linear", 4: "bilinear", 5: "trilinear"}[x.dim()]
    return F.interpolate(x, size=size, mode=kind, align_corners=coords == "align_corners")


def _clip(a, x, lo=None, hi=None):
    lo = a.get("min") if lo is None else lo
    hi = a.get("max") if hi is None else hi
    return torch.clamp(x, min=lo, max=hi)


def _pad(a, x, pads, value=None, axes=None):
    if axes is not None:
        raise Unsupported("Pad with axes")
    mode = text(a.get("mode", "constant"))
    _, explicit = _pads_2d(ints(pads))
    explicit = explicit or []
    if not explicit:
        half = len(ints(pads)) // 2
        for b in reversed(ints(pads)[:half]):
            explicit += [b, b]
    fill = 0.0 if value is None or value.numel() == 0 else float(value)
    return F.pad(x, explicit, mode=mode, value=fill) if mode == "constant" else F.pad(x, explicit, mode=mode)


def _softmax(a, x):
    return torch.softmax(x, dim=a.get("axis", -1))


# This module's part of ops.OPS.
OPS: dict[str, Callable] = {
    "Gemm": _gemm,
    "MatMul": lambda a, x, y: x @ y,
    "Softmax": _softmax,
    "Clip": _clip,
    "Pad": _pad,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Resize": _resize,
    "AveragePool": _pool("AveragePool"),
    "MaxPool": _pool("MaxPool"),
    "ReduceMax": _reduce(_amax),
    "ReduceSum": _reduce(_sum),
    "ReduceMean": _reduce(_mean),
    "ReduceL2": _reduce(_l2),
}
