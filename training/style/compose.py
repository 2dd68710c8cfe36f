"""Mapping then synthesis through onnxruntime, as the service composes them: w broadcast to every
layer. Used by export's checks and by evaluation of a style-based model folder."""

from __future__ import annotations

import numpy as np


def run_style(mapping, synthesis, z: np.ndarray, c: np.ndarray | None, num_ws: int) -> np.ndarray:
    """z (N, z_dim) [, c (N,) int64] -> x (N, C, H, W): synthesis(broadcast(mapping(z, c)))."""
    names = [i.name for i in mapping.get_inputs()]
    feeds = {names[0]: np.ascontiguousarray(z, np.float32)}
    if c is not None:
        feeds[names[1]] = np.asarray(c, np.int64)
    w = mapping.run(None, feeds)[0]  # (N, w_dim)
    ws = np.ascontiguousarray(np.broadcast_to(w[:, None], (len(w), num_ws, w.shape[1])))
    return synthesis.run(None, {synthesis.get_inputs()[0].name: ws})[0]
