"""What a graph's operators ask for in their attributes that this runner does not do, found when
the graph is loaded rather than when it runs."""

from __future__ import annotations

from training.graph_torch.values import DTYPES, text


def refusal(op: str, a: dict) -> str | None:
    """What an operator's attributes ask for that the functions in shapes.py and layers.py do not
    do, or None: checked when the graph is loaded, so that a graph either runs whole or is refused
    before it starts."""
    auto_pad = text(a.get("auto_pad", "NOTSET")) != "NOTSET"
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
        mode = text(a.get("mode", "nearest"))
        coords = text(a.get("coordinate_transformation_mode", "half_pixel"))
        nearest_floor = coords == "asymmetric" and text(a.get("nearest_mode", "round_prefer_floor")) == "floor"
        if not (mode == "nearest" and nearest_floor) and not (
            mode == "linear" and coords in ("half_pixel", "pytorch_half_pixel", "align_corners")
        ):
            return f"Resize mode={mode} coordinate_transformation_mode={coords}"
    if op == "Cast" and a["to"] not in DTYPES:
        return f"Cast to onnx type {a['to']}"
    return None
