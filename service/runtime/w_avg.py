"""The vectors beside a model's graphs, read without pickles and checked against the card: a
style-based model's w_avg.npy (float32 [w_dim], where truncation pulls w) and any model's
directions.json (named unit vectors in its latent space, for /sample's `edit`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.card import CardError, ModelCard


def load_w_avg(path: Path, w_dim: int | None = None) -> np.ndarray:
    """The vector in `path`; CardError naming the file when it is not a finite float32 [w_dim]."""
    try:
        w = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CardError(path, "missing") from None
    except (OSError, ValueError) as e:
        raise CardError(path, f"not a plain .npy array ({e})") from None
    if w.ndim != 1 or (w_dim is not None and w.shape[0] != w_dim):
        raise CardError(path, f"holds shape {list(w.shape)}, expected [{w_dim if w_dim is not None else 'w_dim'}]")
    if not np.issubdtype(w.dtype, np.floating) or not np.isfinite(w).all():
        raise CardError(path, f"must hold finite floats, got dtype {w.dtype}")
    return w.astype(np.float32)


def read_w_avg(folder: Path, card: ModelCard) -> np.ndarray:
    return load_w_avg(Path(folder) / card.style.w_avg.name, card.style.w_dim)


def read_directions(folder: Path, card: ModelCard) -> dict[str, np.ndarray]:
    """name -> unit vector (dim,) float32; CardError naming directions.json when it does not fit."""
    path = Path(folder) / card.directions.name
    space, dim = ("w", card.style.w_dim) if card.style is not None else ("z", card.latent.dim)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["space"] != space:
            raise ValueError(f"space is {data['space']!r}, the model's latent is {space!r}")
        out = {}
        for i, entry in enumerate(data["directions"]):
            v = np.asarray(entry["vector"], dtype=np.float32)
            if v.shape != (dim,) or not np.isfinite(v).all() or not 0.99 < float(np.linalg.norm(v)) < 1.01:
                raise ValueError(f"directions[{i}] ({entry.get('name')!r}) is not a unit vector of {dim} finite values")
            if entry["name"] in out:
                raise ValueError(f"directions[{i}]: the name {entry['name']!r} is used twice")
            out[str(entry["name"])] = v
    except FileNotFoundError:
        raise CardError(path, "missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CardError(path, f"not a directions file of this model ({e})") from None
    return out
