"""Run an ONNX graph as a torch module, so gradients flow through a generator we only have as ONNX.

Why: a model folder holds ONNX graphs, not torch checkpoints (packed folders never had one), yet
training E on real images (E(x) -> G -> x) and projecting an image into latent space both need the
gradient of G's output with respect to its input. onnxruntime has no such gradient. This interprets
the graph node by node with torch ops: the weights are frozen buffers, the inputs may require
grad. It covers the operators that torch's exporter writes for the networks ganserve trains and
for the style-based networks others hand over (convolutions, Gemm, normalisation arithmetic,
Resize, Split ...); any other operator is refused by name when the graph is loaded, never at run
time. tests/training/test_graph_torch.py checks every shipped graph against onnxruntime.

graph.py runs the graph (TorchGraph); ops.py is the operator table, its entries written in
shapes.py and layers.py; refusals.py names what an operator's attributes ask for that they do not do.
"""

from training.graph_torch.errors import GraphOpError
from training.graph_torch.graph import TorchGraph
from training.graph_torch.ops import SUPPORTED_OPS

__all__ = ["SUPPORTED_OPS", "GraphOpError", "TorchGraph"]
