"""What every exporter shares (training/export.py for single-graph models, training/style/export.py
for style-based ones): the parity and realness protocol's numbers, a graph's feeds and example
arguments, D's export, the card's sample section, and a conditional preview's order."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from models.card import Sample
from training.networks import NetworkConfig
from training.onnx_io import export_graph

PARITY_BATCHES = (1, 7, 256)
G_TOLERANCE = 1e-5  # max abs difference of G's samples, torch vs onnxruntime
D_TOLERANCE = 1e-4  # max abs difference of D's logits
REALNESS_SAMPLES = 10_000  # samples of G over which realness.max_logit is measured
REALNESS_CHUNK = 500
PREVIEW_FILE = "samples.png"
PREVIEW_IMAGES = 64  # an 8 x 8 grid
PREVIEW_PER_CLASS = 10  # a conditional model's grid: one row of this many per class


def graph_feeds(first: str, value: np.ndarray, c: np.ndarray | None) -> dict[str, np.ndarray]:
    """A graph's feed: z or x, and a conditional graph's int64 class input `c`."""
    return {first: value} if c is None else {first: value, "c": c}


def graph_args(value: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    return (value,) if c is None else (value, c)


def export_discriminator(D: nn.Module, x: torch.Tensor, c: torch.Tensor | None = None) -> onnx.ModelProto:
    """D's graph, x -> logit, or x, c -> logit for a conditional D (c: int64 (batch,) classes), the
    batch axis dynamic; `x` (and `c`) are an example batch of >= 2. Shared with calibration, so a
    re-exported D has the signature export gave it.

    Every parameter must stay an initializer of its own name: calibration rebuilds the torch D
    from them (training/served_d.py). The exporter's constant folding merges a weight used as
    `weight * scale` (the style-based D's equalized layers) into an unnamed one; such a D is
    exported without the optimizer (the Mul then runs in the graph, on the weights alone)."""
    names = ("x", "c") if c is not None else "x"
    proto = export_graph(D, graph_args(x, c), names, "logit")
    kept = {t.name for t in proto.graph.initializer}
    if all(k in kept for k in D.state_dict()):
        return proto
    return export_graph(D, graph_args(x, c), names, "logit", optimize=False)


def sample_spec(cfg: NetworkConfig, x: np.ndarray) -> Sample:
    shape = list(cfg.sample_shape)
    kind = "image" if len(shape) == 3 and shape[0] in (1, 3) else "vector"
    value_range = cfg.value_range
    if value_range is None:
        # A linear output is unbounded; the card needs finite bounds, so record the range G was
        # observed to produce over the realness samples.
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            lo, hi = lo - 1e-3, hi + 1e-3
        value_range = (lo, hi)
    return Sample(shape=shape, kind=kind, value_range=value_range)


def preview_order(n: int, classes: int, per_class: int) -> np.ndarray:
    """Indices into samples whose class is i % classes, giving `per_class` of class 0, then of class 1, ..."""
    return np.array([k + classes * j for k in range(classes) for j in range(per_class)])
