"""A style-based model's w_avg.npy: float32 [w_dim], finite. Read without pickles (an .npy of a
plain dtype), checked against the card, so truncation never pulls towards a wrong point."""

from __future__ import annotations

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
