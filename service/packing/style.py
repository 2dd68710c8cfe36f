"""What a style-based generator's two graphs and its w_avg say about its w space, checked against
each other: mapping z [, c] -> w [batch, w_dim], synthesis ws [batch, num_ws, w_dim] -> x, and
w_avg float32 [w_dim]. Each refusal names the flag of the file at fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.card import CardError, GraphSignature
from models.packing import PackError
from service.runtime.w_avg import load_w_avg

W_AVG_FILE = "w_avg.npy"


def _dims(shape: list) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def style_of(mapping: GraphSignature, synthesis: GraphSignature, w_avg_path: Path) -> tuple[dict, np.ndarray]:
    """({w_dim, num_ws}, w_avg) for the card; PackError naming --mapping, --synthesis or --w-avg."""
    if len(synthesis.inputs) != 1:
        names = ", ".join(t.name for t in synthesis.inputs)
        raise PackError(
            "--synthesis",
            f"takes {len(synthesis.inputs)} inputs ({names}); ganserve feeds it ws alone "
            "(export it with its noise fixed: noise_mode='const')",
        )
    ws = synthesis.inputs[0]
    if ws.dtype != "float32" or len(ws.shape) != 3 or not all(isinstance(d, int) for d in ws.shape[1:]):
        raise PackError(
            "--synthesis",
            f"its input {ws.name!r} is {ws.dtype} {_dims(ws.shape)}; expected float32 [batch, num_ws, w_dim]",
        )
    if isinstance(ws.shape[0], int):
        raise PackError(
            "--synthesis", f"its input {ws.name!r} is {_dims(ws.shape)}: export it with a dynamic batch axis"
        )
    num_ws, w_dim = ws.shape[1], ws.shape[2]
    w = mapping.outputs[0]
    if w.dtype != "float32" or len(w.shape) != 2 or w.shape[1] != w_dim:
        hint = " (StyleGAN's mapping gives every layer's copy: export mapping(z, c)[:, 0])" if len(w.shape) == 3 else ""
        raise PackError(
            "--mapping",
            f"its output {w.name!r} is {w.dtype} {_dims(w.shape)}; synthesis takes w of {w_dim}: expected [batch, {w_dim}]{hint}",
        )
    try:
        w_avg = load_w_avg(w_avg_path, w_dim)
    except CardError as e:
        raise PackError("--w-avg", str(e)) from None
    return {"w_dim": w_dim, "num_ws": num_ws}, w_avg
