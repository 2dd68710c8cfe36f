"""Run an ONNX graph as a torch module, so gradients flow through a generator we only have as ONNX.

Why: a model folder holds ONNX graphs, not torch checkpoints (packed folders never had one), yet
training E on real images (E(x) -> G -> x) and projecting an image into latent space both need the
gradient of G's output with respect to its input. onnxruntime has no such gradient. This interprets
the graph node by node with torch ops: the weights are frozen buffers, the inputs may require
grad. It covers the operators that torch's exporter writes for the networks ganserve trains and
for the style-based networks others hand over (convolutions, Gemm, normalisation arithmetic,
Resize, Split ...); any other operator is refused by name when the graph is loaded, never at run
time. tests/test_graph_torch.py checks every shipped graph against onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn


class GraphOpError(ValueError):
    """A graph that this runner cannot run; the message names the file, node and operator."""


class _Unsupported(ValueError):
    """An input value (not an attribute: those are refused at load) that an operator here does not
    handle; forward() names the file and node."""


_DTYPES = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.BOOL: torch.bool,
}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(t: torch.Tensor | None) -> list[int] | None:
    return None if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _gemm(a, x, y, c=None):
    x = x.t() if a.get("transA", 0) else x
    y = y.t() if a.get("transB", 0) else y
    out = a.get("alpha", 1.0) * (x @ y)
    return out if c is None else out + a.get("beta", 1.0) * c


def _reshape(a, x, shape):
    dims = _ints(shape)
    if not a.get("allowzero", 0):  # 0 copies the input's size at that position
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _reduce(fn: Callable) -> Callable:
    def run(a, x, axes=None):
        dims = _ints(axes) if axes is not None else a.get("axes")
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


def _unsqueeze(a, x, axes=None):
    dims = _ints(axes) if axes is not None else a["axes"]
    rank = x.dim() + len(dims)
    for d in sorted(d % rank for d in dims):
        x = x.unsqueeze(d)
    return x


def _squeeze(a, x, axes=None):
    dims = _ints(axes) if axes is not None else a.get("axes")
    if dims is None:
        return x.squeeze()
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.squeeze(d)
    return x


def _gather(a, data, idx):
    axis = a.get("axis", 0) % data.dim()
    idx = idx.long() % data.shape[axis]
    flat = data.index_select(axis, idx.reshape(-1))
    return flat.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1 :])


def _gather_nd(a, data, idx):
    idx = idx.long()
    return data[tuple(idx[..., i] for i in range(idx.shape[-1]))]


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
    mode = _text(a.get("mode", "nearest"))
    coords = _text(a.get("coordinate_transformation_mode", "half_pixel"))
    size = _ints(sizes)[2:] if sizes is not None and sizes.numel() else None
    factors = [float(s) for s in scales.tolist()[2:]] if size is None else None
    if size is None:
        size = [int(math.floor(d * f)) for d, f in zip(x.shape[2:], factors, strict=True)]
    if mode == "nearest":  # asymmetric coordinates, floor: checked at load (_refusal)
        return F.interpolate(x, size=size, mode="nearest")
    kind = {3: "linear", 4: "bilinear", 5: "trilinear"}[x.dim()]
    return F.interpolate(x, size=size, mode=kind, align_corners=coords == "align_corners")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _split(a, x, split=None, *, outputs: int):
    axis = a.get("axis", 0)
    sizes = _ints(split) if split is not None else a.get("split")
    if sizes is None:
        parts = a.get("num_outputs", outputs)
        step = -(-x.shape[axis] // parts)  # ceil: the last part is the smaller one
        sizes = [min(step, x.shape[axis] - i * step) for i in range(parts)]
    return tuple(torch.split(x, sizes, dim=axis))


def _slice(a, x, starts, ends, axes=None, steps=None):
    index = [slice(None)] * x.dim()
    axes_l = _ints(axes) if axes is not None else list(range(len(_ints(starts))))
    steps_l = _ints(steps) if steps is not None else [1] * len(axes_l)
    for s, e, ax, st in zip(_ints(starts), _ints(ends), axes_l, steps_l, strict=True):
        if st < 1:
            raise _Unsupported("Slice with a negative step")
        size = x.shape[ax]
        index[ax] = slice(max(-size, min(s, size)), max(-size, min(e, size)), st)
    return x[tuple(index)]


def _clip(a, x, lo=None, hi=None):
    lo = a.get("min") if lo is None else lo
    hi = a.get("max") if hi is None else hi
    return torch.clamp(x, min=lo, max=hi)


def _expand(a, x, shape):
    return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(_ints(shape))))


def _pad(a, x, pads, value=None, axes=None):
    if axes is not None:
        raise _Unsupported("Pad with axes")
    mode = _text(a.get("mode", "constant"))
    _, explicit = _pads_2d(_ints(pads))
    explicit = explicit or []
    if not explicit:
        half = len(_ints(pads)) // 2
        for b in reversed(_ints(pads)[:half]):
            explicit += [b, b]
    fill = 0.0 if value is None or value.numel() == 0 else float(value)
    return F.pad(x, explicit, mode=mode, value=fill) if mode == "constant" else F.pad(x, explicit, mode=mode)


def _constant_of_shape(a, shape):
    value = a.get("value")
    fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return torch.full(_ints(shape), fill.reshape(-1)[0].item(), dtype=torch.from_numpy(fill).dtype)


def _shape(a, x):
    dims = list(x.shape)[a.get("start", 0) : a.get("end", None)]
    return torch.tensor(dims, dtype=torch.int64)


def _cast(a, x):
    return x.to(_DTYPES[a["to"]])


def _softmax(a, x):
    return torch.softmax(x, dim=a.get("axis", -1))


def _flatten(a, x):
    axis = a.get("axis", 1) % max(1, x.dim())
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _range(a, start, limit, delta):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


def _refusal(op: str, a: dict) -> str | None:
    """What an operator's attributes ask for that the functions above do not do, or None: checked
    when the graph is loaded, so that a graph either runs whole or is refused before it starts."""
    auto_pad = _text(a.get("auto_pad", "NOTSET")) != "NOTSET"
    pads = a.get("pads", [])
    asymmetric = pads[: len(pads) // 2] != pads[len(pads) // 2 :]
    if op == "GatherND" and a.get("batch_dims", 0):
        return "GatherND with batch_dims > 0"
    if op in ("Conv", "ConvTranspose", "AveragePool", "MaxPool") and auto_pad:
        return f"{op} with auto_pad"
    if op == "ConvTranspose" and ("output_shape" in a or asymmetric):
        return "ConvTranspose with output_shape or asymmetric pads"
    if op in ("AveragePool", "MaxPool") and (len(a.get("kernel_shape", [])) != 2 or asymmetric):
        return f"{op} other than 2-D with symmetric pads"
    if op == "Resize":
        mode = _text(a.get("mode", "nearest"))
        coords = _text(a.get("coordinate_transformation_mode", "half_pixel"))
        nearest_floor = coords == "asymmetric" and _text(a.get("nearest_mode", "round_prefer_floor")) == "floor"
        if not (mode == "nearest" and nearest_floor) and not (
            mode == "linear" and coords in ("half_pixel", "pytorch_half_pixel", "align_corners")
        ):
            return f"Resize mode={mode} coordinate_transformation_mode={coords}"
    if op == "Cast" and a["to"] not in _DTYPES:
        return f"Cast to onnx type {a['to']}"
    return None


# Operators whose output is one tensor, by name: (attributes, *inputs) -> tensor.
_OPS: dict[str, Callable] = {
    "Gemm": _gemm,
    "MatMul": lambda a, x, y: x @ y,
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y if x.is_floating_point() else torch.div(x, y, rounding_mode="trunc"),
    "Pow": lambda a, x, y: torch.pow(x, y),
    "Max": lambda a, *xs: torch.stack(torch.broadcast_tensors(*xs)).amax(0),
    "Min": lambda a, *xs: torch.stack(torch.broadcast_tensors(*xs)).amin(0),
    "Neg": lambda a, x: -x,
    "Abs": lambda a, x: torch.abs(x),
    "Sqrt": lambda a, x: torch.sqrt(x),
    "Reciprocal": lambda a, x: 1.0 / x,
    "Exp": lambda a, x: torch.exp(x),
    "Log": lambda a, x: torch.log(x),
    "Erf": lambda a, x: torch.erf(x),
    "Relu": lambda a, x: F.relu(x),
    "LeakyRelu": lambda a, x: F.leaky_relu(x, a.get("alpha", 0.01)),
    "Sigmoid": lambda a, x: torch.sigmoid(x),
    "Tanh": lambda a, x: torch.tanh(x),
    "Softplus": lambda a, x: F.softplus(x),
    "Softmax": _softmax,
    "Identity": lambda a, x: x,
    "Equal": lambda a, x, y: x == y,
    "Greater": lambda a, x, y: x > y,
    "Less": lambda a, x, y: x < y,
    "Not": lambda a, x: ~x,
    "Where": lambda a, c, x, y: torch.where(c, x, y),
    "Cast": _cast,
    "Clip": _clip,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": lambda a, x: x.permute(*(a.get("perm") or reversed(range(x.dim())))),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda a, *xs: torch.cat(xs, dim=a["axis"]),
    "Gather": _gather,
    "GatherND": _gather_nd,
    "Expand": _expand,
    "Slice": _slice,
    "Shape": _shape,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
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
SUPPORTED_OPS = frozenset(_OPS) | {"Constant", "Split"}


class TorchGraph(nn.Module):
    """An ONNX file as a torch module: `graph(x, ...)` or `graph(**{input_name: x})` returns the
    graph's outputs (one tensor, or a tuple when it has several). Weights are frozen buffers."""

    def __init__(self, path: Path | str):
        super().__init__()
        path = Path(path)
        try:
            model = onnx.load(str(path))
        except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, Exception) as e:
            raise GraphOpError(f"{path}: not a readable ONNX graph ({e})") from e
        graph = model.graph
        if any(o.domain not in ("", "ai.onnx") for o in model.opset_import):
            raise GraphOpError(f"{path.name}: uses operator domains other than ai.onnx")
        for node in graph.node:
            if node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
                raise GraphOpError(
                    f"{path.name}: node {node.name!r} uses {node.op_type}, which ganserve's torch runner "
                    f"does not run (it runs {', '.join(sorted(SUPPORTED_OPS))})"
                )
        self.path = path
        names = [i.name for i in graph.initializer]
        self._slots = {name: f"w{i}" for i, name in enumerate(names)}  # ONNX names may hold dots
        for init in graph.initializer:
            self.register_buffer(self._slots[init.name], torch.from_numpy(numpy_helper.to_array(init).copy()))
        self.constants: dict[str, torch.Tensor] = {}
        self.nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                (attr,) = node.attribute
                value = onnx.helper.get_attribute_value(attr)
                array = numpy_helper.to_array(value) if attr.name == "value" else np.asarray(value)
                self.constants[node.output[0]] = torch.from_numpy(np.array(array))
            else:
                attrs = _attrs(node)
                refused = _refusal(node.op_type, attrs)
                if refused is not None:
                    raise GraphOpError(f"{path.name}: node {node.name!r}: {refused} is not supported")
                self.nodes.append((node.op_type, node.name, list(node.input), list(node.output), attrs))
        self.input_names = [i.name for i in graph.input if i.name not in self._slots]
        self.output_names = [o.name for o in graph.output]

    def forward(self, *args: torch.Tensor, **named: torch.Tensor):
        if len(args) > len(self.input_names):
            raise TypeError(f"{self.path.name}: takes {len(self.input_names)} inputs, got {len(args)}")
        env: dict[str, torch.Tensor] = dict(zip(self.input_names, args, strict=False)) | named
        env |= {name: getattr(self, slot) for name, slot in self._slots.items()}
        env |= self.constants
        env[""] = None  # an omitted optional input
        for op, name, inputs, outputs, attrs in self.nodes:
            values = [env[i] for i in inputs]
            while values and values[-1] is None:
                values.pop()
            try:
                if op == "Split":
                    result = _split(attrs, *values, outputs=len(outputs))
                else:
                    result = (_OPS[op](attrs, *values),)
            except _Unsupported as e:
                raise GraphOpError(f"{self.path.name}: node {name!r}: {e} is not supported") from e
            env.update(zip(outputs, result, strict=True))
        results = tuple(env[o] for o in self.output_names)
        return results[0] if len(results) == 1 else results
