"""The classes a conditional model's samples are asked for (`labels` in /sample, /score and
/interpolate), resolved against its card, and how they travel back (a JSON field, a header).

A request's `labels` is one class for every sample (an index or a name), a list of n classes, or
"balanced" (the classes in turn: 0, 1, ..., K-1, 0, ...). A conditional model asked without labels
draws them uniformly from the request's seed, on their own PCG64 stream (LABEL_STREAM), so the
seed's latents are the same with or without labels and the same seed gives the same labels on every
machine. Every mistake is a RequestError naming `labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from service.core import latents
from service.core.problems import RequestError
from service.runtime.model import LoadedModel

FIELD = "labels"
BALANCED = "balanced"
LABEL_STREAM = 2  # latents.generator streams: 0 latents, 1 DRS's coins, 2 drawn labels
HEADER = "X-Labels"

Label = Union[int, str]
Labels = Union[Label, list[Label]]


@dataclass(frozen=True)
class Plan:
    """The n classes of a request and how they were chosen: "given" (one class or a list),
    "balanced", or "drawn" (uniform from the seed)."""

    classes: np.ndarray  # (n,) int64
    policy: str


def _index(model: LoadedModel, label: Label, where: str) -> int:
    try:
        return model.card.condition.index(label)
    except ValueError as e:
        raise RequestError(where, str(e)) from None


def _refuse_unconditional(model: LoadedModel, labels) -> None:
    if labels is not None and not model.conditional:
        raise RequestError(FIELD, f"model {model.name!r} is unconditional: it takes no labels")


def resolve(model: LoadedModel, labels: Optional[Labels], n: int, seed: Optional[int]) -> Optional[Plan]:
    """The classes of n samples, or None for an unconditional model. Without labels, a conditional
    model's classes are drawn from `seed`; with no seed either (explicit latents), labels are required."""
    _refuse_unconditional(model, labels)
    if not model.conditional:
        return None
    k = model.card.condition.classes
    if labels is None:
        if seed is None:
            raise RequestError(
                FIELD,
                f"model {model.name!r} is conditional: give labels with explicit latents "
                "(there is no seed to draw them from)",
            )
        return Plan(latents.generator(seed, stream=LABEL_STREAM).integers(0, k, size=n, dtype=np.int64), "drawn")
    if isinstance(labels, str) and labels == BALANCED and BALANCED not in model.card.condition.names:
        return Plan(np.arange(n, dtype=np.int64) % k, BALANCED)
    if isinstance(labels, list):
        if len(labels) != n:
            raise RequestError(FIELD, f"a list of labels must hold one class per sample: {n}, got {len(labels)}")
        return Plan(np.array([_index(model, v, f"{FIELD}.{i}") for i, v in enumerate(labels)], np.int64), "given")
    return Plan(np.full(n, _index(model, labels, FIELD), np.int64), "given")


def for_scoring(model: LoadedModel, labels: Optional[Labels], n: int) -> Optional[np.ndarray]:
    """The classes D(x | c) scores n samples under: required for a conditional model."""
    _refuse_unconditional(model, labels)
    if not model.conditional:
        return None
    if labels is None:
        raise RequestError(
            FIELD,
            f"model {model.name!r} is conditional: D(x | c) needs the class of each sample "
            '(one class, a list of n, or "balanced")',
        )
    return resolve(model, labels, n, None).classes


def from_query(text: Optional[str]) -> Optional[Labels]:
    """`?labels=` of an npy or png body: one class, `balanced`, or classes separated by commas;
    digits are indices, anything else a name."""
    if text is None:
        return None

    def one(item: str) -> Label:
        item = item.strip()
        return int(item) if item.isdigit() else item

    if "," in text:
        return [one(v) for v in text.split(",")]
    return one(text)


def header_value(classes: np.ndarray) -> str:
    """The X-Labels header: the class indices of the answer's samples, in order, comma-separated."""
    return ",".join(map(str, classes.tolist()))


def rows_by_class(x: np.ndarray, classes: np.ndarray, k: int, blank: float) -> tuple[np.ndarray, int]:
    """A "balanced" png grid's tiles: class c's samples in row c (in their order), short rows padded
    with blank tiles. Returns (tiles, per_row) for the grid encoder's nrow."""
    per_row = max(int(np.bincount(classes, minlength=k).max(initial=0)), 1)
    tiles = np.full((k * per_row, *x.shape[1:]), blank, dtype=np.float32)
    for c in range(k):
        rows = x[classes == c]
        tiles[c * per_row : c * per_row + len(rows)] = rows
    return tiles, per_row
