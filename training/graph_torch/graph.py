"""TorchGraph: an ONNX file loaded (every operator checked against the table, weights as frozen
buffers) and run node by node with the torch operators of ops.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.graph_torch.errors import GraphOpError, Unsupported
from training.graph_torch.ops import OPS, SUPPORTED_OPS
from training.graph_torch.refusals import refusal
from training.graph_torch.shapes import split


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


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
                refused = refusal(node.op_type, attrs)
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
                    result = split(attrs, *values, outputs=len(outputs))
                else:
                    result = (OPS[op](attrs, *values),)
            except Unsupported as e:
                raise GraphOpError(f"{self.path.name}: node {name!r}: {e} is not supported") from e
            env.update(zip(outputs, result, strict=True))
        results = tuple(env[o] for o in self.output_names)
        return results[0] if len(results) == 1 else results
