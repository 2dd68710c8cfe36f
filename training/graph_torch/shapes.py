"""The operators that shape, select and make tensors (Reshape, Gather, Slice, Split, Cast ...):
their torch implementations and their part of the operator table (ops.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from onnx import numpy_helper

from training.graph_torch.errors import Unsupported
from training.graph_torch.values import DTYPES, ints


def _reshape(a, x, shape):
    dims = ints(shape)
    if not a.get("allowzero", 0):  # 0 copies the input's size at that position
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _unsqueeze(a, x, axes=None):
    dims = ints(axes) if axes is not None else a["axes"]
    rank = x.dim() + len(dims)
    for d in sorted(d % rank for d in dims):
        x = x.unsqueeze(d)
    return x


def _squeeze(a, x, axes=None):
    dims = ints(axes) if axes is not None else a.get("axes")
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


def split(a, x, split=None, *, outputs: int):
    axis = a.get("axis", 0)
    sizes = ints(split) if split is not None else a.get("split")
    if sizes is None:
        parts = a.get("num_outputs", outputs)
        step = -(-x.shape[axis] // parts)  # ceil: the last part is the smaller one
        sizes = [min(step, x.shape[axis] - i * step) for i in range(parts)]
    return tuple(torch.split(x, sizes, dim=axis))


def _slice(a, x, starts, ends, axes=None, steps=None):
    index = [slice(None)] * x.dim()
    axes_l = ints(axes) if axes is not None else list(range(len(ints(starts))))
    steps_l = ints(steps) if steps is not None else [1] * len(axes_l)
    for s, e, ax, st in zip(ints(starts), ints(ends), axes_l, steps_l, strict=True):
        if st < 1:
            raise Unsupported("Slice with a negative step")
        size = x.shape[ax]
        index[ax] = slice(max(-size, min(s, size)), max(-size, min(e, size)), st)
    return x[tuple(index)]


def _expand(a, x, shape):
    return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(ints(shape))))


def _constant_of_shape(a, shape):
    value = a.get("value")
    fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return torch.full(ints(shape), fill.reshape(-1)[0].item(), dtype=torch.from_numpy(fill).dtype)


def _shape(a, x):
    dims = list(x.shape)[a.get("start", 0) : a.get("end", None)]
    return torch.tensor(dims, dtype=torch.int64)


def _cast(a, x):
    return x.to(DTYPES[a["to"]])


def _flatten(a, x):
    axis = a.get("axis", 1) % max(1, x.dim())
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _range(a, start, limit, delta):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


# This module's part of ops.OPS. Split, whose output is several tensors, is run by graph.py.
OPS: dict[str, Callable] = {
    "Cast": _cast,
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
}
