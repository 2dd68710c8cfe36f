"""/sample's w space, for style-based models (card version 3): the request's fields checked
against the model, and the samples drawn through mapping and synthesis apart, with the ws changed
in between (truncation towards w_avg, a second seed's styles from a layer on, w given).

Truncation here is StyleGAN's: w' = w_avg + psi (w - w_avg) on the first `truncation_cutoff`
layers, after mixing (it is linear per layer, so the order of the two does not matter). z-space
truncation (`truncation`) stays for single-graph models and is refused here.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from service.core import encoding, labels, latents
from service.core.problems import RequestError
from service.core.schemas import InterpolateRequest, SampleRequest
from service.runtime.model import LoadedModel

FIELDS = ("truncation_psi", "truncation_cutoff", "mix", "return_w", "w")
# What sends a style-based model's request down the w path (edit applies in w there).
W_PATH_FIELDS = (*FIELDS, "edit")


def asked(req: SampleRequest, names: tuple[str, ...] = FIELDS) -> Optional[str]:
    """The first w-space field the request sets, or None."""
    for name in names:
        value = getattr(req, name)
        if value is not None and value is not False:
            return name
    return None


def check(model: LoadedModel, req: SampleRequest, fmt_with_fields: str) -> None:
    """400 naming the field: w-space fields on a single-graph model, z truncation on a style-based
    one, and every combination that cannot be served."""
    name = asked(req)
    if not model.is_style:
        if name is not None:
            raise RequestError(
                name,
                f"model {model.name!r} is a single-graph generator with no w space; "
                "truncation_psi, truncation_cutoff, mix, return_w and w need a style-based model "
                "(truncate in z with `truncation`)",
            )
        return
    style = model.card.style
    if req.truncation is not None:
        raise RequestError("truncation", f"model {model.name!r} is style-based: truncate in w with truncation_psi")
    if req.truncation_cutoff is not None:
        if req.truncation_psi is None:
            raise RequestError("truncation_cutoff", "needs truncation_psi")
        if req.truncation_cutoff > style.num_ws:
            raise RequestError(
                "truncation_cutoff", f"{model.name} has {style.num_ws} layers, got {req.truncation_cutoff}"
            )
    if req.mix is not None and req.mix.from_layer >= style.num_ws:
        raise RequestError(
            "mix.from_layer", f"must be below {model.name}'s {style.num_ws} layers, got {req.mix.from_layer}"
        )
    if req.return_w and req.format != fmt_with_fields:
        raise RequestError("return_w", f"only with format {fmt_with_fields}")
    if req.w is not None and (req.seed is not None or req.latents is not None):
        raise RequestError("w", "give w, or a seed or latents, not several")
    if name is not None and (req.min_realness is not None or req.drs):
        field = "drs" if req.drs else "min_realness"
        raise RequestError(field, f"filters do not yet combine with w-space fields ({name})")


def given_ws(model: LoadedModel, req: SampleRequest) -> np.ndarray:
    """The request's w as ws (n, num_ws, w_dim): rows of w_dim are broadcast to every layer."""
    style = model.card.style
    w = encoding.json_array(req.w, "w")
    if w.ndim == 2 and w.shape[1] == style.w_dim:
        return np.repeat(w[:, None], style.num_ws, axis=1)
    if w.ndim == 3 and w.shape[1:] == (style.num_ws, style.w_dim):
        return w
    raise RequestError(
        "w",
        f"rows of {style.w_dim} values, or of {style.num_ws} x {style.w_dim}, for {model.name}; got {list(w.shape)}",
    )


def _ws_of_seed(model: LoadedModel, req: SampleRequest, seed: int, n: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    z = latents.draw(latents.generator(seed), model.card.latent, n)
    plan = labels.resolve(model, req.labels, n, seed)
    c = None if plan is None else plan.classes
    return model.broadcast(model.map_w(z, c)).copy(), c


def draw(model: LoadedModel, req: SampleRequest, n: int, seed: Optional[int], z: Optional[np.ndarray]):
    """(samples, ws, classes, meta) for a checked request: ws from w, the latents or the seed,
    mixed and truncated as asked, then drawn by synthesis."""
    meta: dict = {}
    if req.w is not None:
        ws = given_ws(model, req)
        plan = labels.resolve(model, req.labels, len(ws), None) if req.labels is not None else None
        c = None if plan is None else plan.classes
        if req.scores and model.conditional and c is None:
            raise RequestError(
                labels.FIELD, f"model {model.name!r} is conditional: scoring w needs the labels D judges under"
            )
    elif z is not None:
        plan = labels.resolve(model, req.labels, len(z), None)
        c = None if plan is None else plan.classes
        ws = model.broadcast(model.map_w(z, c)).copy()
    else:
        ws, c = _ws_of_seed(model, req, seed, n)
    if req.edit:  # moves in w, on every layer, before mixing and truncation
        from service.core import edits

        ws = ws + edits.offset(model, req)[None, None]
        meta["edit"] = edits.described(req)
    if req.mix is not None:
        mixed, _ = _ws_of_seed(model, req, req.mix.seed, len(ws))
        ws[:, req.mix.from_layer :] = mixed[:, req.mix.from_layer :]
        meta.update(mix_seed=req.mix.seed, mix_from_layer=req.mix.from_layer)
    if req.truncation_psi is not None:
        cutoff = req.truncation_cutoff or model.card.style.num_ws
        w_avg = model.w_avg[None, None]
        ws[:, :cutoff] = w_avg + req.truncation_psi * (ws[:, :cutoff] - w_avg)
        meta.update(truncation_psi=req.truncation_psi, truncation_cutoff=cutoff)
    return model.synthesize(ws), ws, c, meta


def check_walk(model: LoadedModel, req: InterpolateRequest) -> None:
    """/interpolate: truncation_psi on a style-based model only; z truncation on the others only."""
    if not model.is_style:
        if req.truncation_psi is not None:
            raise RequestError("truncation_psi", f"model {model.name!r} is a single-graph generator with no w space")
        return
    if req.truncation is not None:
        raise RequestError("truncation", f"model {model.name!r} is style-based: truncate in w with truncation_psi")


def walk(model: LoadedModel, a: np.ndarray, b: np.ndarray, req: InterpolateRequest, c: Optional[np.ndarray]):
    """`steps` samples on the path between the w of z's a and b (lerp unless slerp is asked for),
    truncated by psi: (samples, meta)."""
    ends_c = None if c is None else c[:2]
    w_a, w_b = model.map_w(np.stack([a, b]), ends_c)
    t = np.linspace(0.0, 1.0, req.steps)
    method = req.method or "lerp"
    w = latents.slerp(w_a, w_b, t) if method == "slerp" else latents.lerp(w_a, w_b, t)  # (steps, w_dim)
    meta: dict = {"method": method, "space": "w"}
    if req.truncation_psi is not None:
        w = model.w_avg[None] + req.truncation_psi * (w - model.w_avg[None])
        meta["truncation_psi"] = req.truncation_psi
    return model.synthesize(model.broadcast(w)), meta
