"""/sample's `edit`: moves along a model's editing directions (directions.json, made by
`python -m training directions`), added to each sample's latent before G draws it:
latent' = latent + sum(amount x direction), in z for a single-graph model (a uniform z then clipped
to its bounds, which G never saw beyond), in w for a style-based model (every layer's w, before
mixing and truncation). The directions are unit vectors, so an amount is a distance in latent units.
"""

from __future__ import annotations

import numpy as np

from service.core.problems import RequestError
from service.core.schemas import InterpolateRequest, SampleRequest
from service.runtime.model import LoadedModel


def check(model: LoadedModel, req: SampleRequest) -> None:
    if not req.edit:
        return
    if not model.directions:
        raise RequestError(
            "edit",
            f"model {model.name!r} has no editing directions (python -m training directions models/{model.name})",
        )
    for i, move in enumerate(req.edit):
        if move.direction not in model.directions:
            known = ", ".join(model.directions)
            raise RequestError(
                f"edit.{i}.direction", f"{move.direction!r} is not a direction of {model.name} ({known})"
            )
    if req.min_realness is not None or req.drs:
        raise RequestError("drs" if req.drs else "min_realness", "filters do not yet combine with edit")


def offset(model: LoadedModel, req: SampleRequest) -> np.ndarray:
    """sum(amount x direction), (dim,) float32."""
    total = np.zeros_like(next(iter(model.directions.values())))
    for move in req.edit:
        total = total + np.float32(move.amount) * model.directions[move.direction]
    return total.astype(np.float32)


def apply_z(model: LoadedModel, req: SampleRequest, z: np.ndarray) -> np.ndarray:
    """A single-graph model's latents moved (and a uniform latent clipped to its bounds)."""
    moved = z + offset(model, req)[None]
    lat = model.card.latent
    if lat.distribution == "uniform":
        moved = np.clip(moved, lat.low, lat.high)
    return moved.astype(np.float32)


def described(req: SampleRequest) -> list[str]:
    """The answer's record of the edit, "direction:amount" each (the JSON field and the X-Edit header)."""
    return [f"{move.direction}:{move.amount:g}" for move in req.edit]


def walk_along(model: LoadedModel, req: InterpolateRequest, z: np.ndarray, c) -> tuple[np.ndarray, dict]:
    """`steps` samples of z (a seed's first latent; its w for a style-based model, psi applied)
    moved by amounts evenly from amounts[0] to amounts[1] along the direction: (samples, meta)."""
    name = req.along.direction
    if name not in model.directions:
        known = ", ".join(model.directions) or "none"
        raise RequestError("along.direction", f"{name!r} is not a direction of {model.name} ({known})")
    t = np.linspace(req.along.amounts[0], req.along.amounts[1], req.steps).astype(np.float32)[:, None]
    meta = {"along": name, "amounts": list(req.along.amounts)}
    if model.is_style:
        w = model.map_w(z[None], None if c is None else c[:1]) + t * model.directions[name][None]  # (steps, w_dim)
        if req.truncation_psi is not None:
            w = model.w_avg[None] + req.truncation_psi * (w - model.w_avg[None])
            meta["truncation_psi"] = req.truncation_psi
        return model.synthesize(model.broadcast(w)), meta
    moved = z[None] + t * model.directions[name][None]
    lat = model.card.latent
    if lat.distribution == "uniform":
        moved = np.clip(moved, lat.low, lat.high)
    return model.generate(moved.astype(np.float32), c), meta
