"""The operator table: every operator the torch runner runs, by name. The element-wise ones are
written here; shapes.py and layers.py hold the rest, each with its part of the table."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from training.graph_torch import layers, shapes

# Operators whose output is one tensor, by name: (attributes, *inputs) -> tensor.
OPS: dict[str, Callable] = {
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
    "Identity": lambda a, x: x,
    "Equal": lambda a, x, y: x == y,
    "Greater": lambda a, x, y: x > y,
    "Less": lambda a, x, y: x < y,
    "Not": lambda a, x: ~x,
    "Where": lambda a, c, x, y: torch.where(c, x, y),
    **shapes.OPS,
    **layers.OPS,
}
SUPPORTED_OPS = frozenset(OPS) | {"Constant", "Split"}
