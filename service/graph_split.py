"""One output of a graph as a graph of its own: a discriminator.onnx that keeps the training D's
ratio beside the calibrated D's logit (Realness.drs_ratio "training", training/drs_head.py) is
opened as two sessions, one per output.

Why: onnxruntime and OpenVINO run every node of a graph whatever outputs a run asks for. One
session would charge every realness request (`scores`, `min_realness`, `/score`, /v2) the second
D's run as well: on mnist, 43 -> 83 ms per 1,024 samples (2 threads, this repo's host). Split,
realness costs what it did, and only `drs` runs both.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.utils


def only_output(path: Path, name: str) -> bytes:
    """The serialized graph of `path` cut down to the nodes that compute output `name` (same
    inputs, same weights for those nodes, same IR version and opsets)."""
    model = onnx.load(str(path))
    sub = onnx.utils.Extractor(model).extract_model([i.name for i in model.graph.input], [name])
    sub.ir_version = model.ir_version  # the pinned onnxruntime reads only what export wrote
    del sub.opset_import[:]
    sub.opset_import.extend(model.opset_import)
    return sub.SerializeToString()
