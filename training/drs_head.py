"""One discriminator.onnx, two jobs: the calibrated D's `logit` (realness) beside the training D's
`drs_logit` (the ratio DRS rejects by), as two outputs of one graph on the same inputs.

Why two: calibrating D (training/calibrate.py) makes realness mean something (mnist's held-out AUC
0.75 -> 0.94), but on mnist and patches the calibrated D's ratio rewards what it learned to see,
the artefacts G leaves, and DRS by it raises the Frechet distance and SWD, while DRS by the D
trained with G lowers them (docs/RESULTS.md section 7; bench/drs_by_calibration.py). One file keeps
the artifact contract (one D per model, one card) and one run gives both.

Works on the graphs as files (the exported training D of a DCGAN has its batch norm folded in, so
it cannot be rebuilt as a torch module): the training D's names are prefixed, its inputs joined to
the calibrated D's, its output renamed DRS_OUTPUT.
"""

from __future__ import annotations

import onnx
import onnx.utils
from onnx import compose, helper

from models.card import DRS_OUTPUT

PREFIX = "drs/"


def with_drs_head(served: onnx.ModelProto, training: onnx.ModelProto) -> onnx.ModelProto:
    """`served` (outputs: its logit) with `training`'s logit added as the output DRS_OUTPUT. Both
    must take the same inputs (names and order) and have one output each, at the same opset."""
    s_in, t_in = [i.name for i in served.graph.input], [i.name for i in training.graph.input]
    if s_in != t_in:
        raise ValueError(f"the two D's take different inputs: {s_in} and {t_in}")
    if len(served.graph.output) != 1 or len(training.graph.output) != 1:
        raise ValueError("each D must have exactly one output (its logit)")
    opsets = lambda m: {o.domain: o.version for o in m.opset_import}  # noqa: E731
    if opsets(served) != opsets(training):
        raise ValueError(f"the two D's use different opsets: {opsets(served)} and {opsets(training)}")
    head = compose.add_prefix(training, PREFIX)
    joined = {PREFIX + name: name for name in t_in}  # the head reads the served graph's inputs
    renamed = {PREFIX + training.graph.output[0].name: DRS_OUTPUT}
    nodes = []
    for node in head.graph.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        node.input[:] = [joined.get(i, i) for i in node.input]
        node.output[:] = [renamed.get(o, o) for o in node.output]
        nodes.append(node)
    out = helper.make_tensor_value_info(DRS_OUTPUT, training.graph.output[0].type.tensor_type.elem_type, None)
    out.type.CopyFrom(training.graph.output[0].type)
    graph = helper.make_graph(
        list(served.graph.node) + nodes, served.graph.name,
        list(served.graph.input), list(served.graph.output) + [out],
        initializer=list(served.graph.initializer) + list(head.graph.initializer))
    model = helper.make_model(graph, opset_imports=list(served.opset_import), ir_version=served.ir_version,
                              producer_name=served.producer_name, producer_version=served.producer_version)
    onnx.checker.check_model(model)
    return model


def only_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """`model` cut down to the nodes that compute output `name` (same inputs, IR version, opsets)."""
    sub = onnx.utils.Extractor(model).extract_model([i.name for i in model.graph.input], [name])
    sub.ir_version = model.ir_version  # the pinned onnxruntime reads only what export wrote
    del sub.opset_import[:]
    sub.opset_import.extend(model.opset_import)
    return sub


def drs_head_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """The training D alone, from a graph that with_drs_head built (a second calibration keeps it)."""
    names = [o.name for o in model.graph.output]
    if DRS_OUTPUT not in names[1:]:
        raise ValueError(f"the graph has no {DRS_OUTPUT!r} output after its first")
    head = only_output(model, DRS_OUTPUT)
    head.graph.output[0].name = "logit"
    for node in head.graph.node:
        node.output[:] = ["logit" if o == DRS_OUTPUT else o for o in node.output]
    return head
