"""Image files for projection: PNG / JPEG of the model's size (or resized on request, and said so),
or .npy arrays of one sample (*sample_shape) or several (n, *sample_shape) in the card's value
range. Every refusal names the file. .npy files are read without pickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.card import ModelCard

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class ProjectInputError(ValueError):
    """An image or option that projection cannot use; the message names the file or flag."""


def read_images(card: ModelCard, paths: list[Path], *, resize: bool = False) -> tuple[np.ndarray, list[str], list[str]]:
    """(x (n, *sample_shape) float32 in the card's value range, the file of each row, notes on what
    was changed)."""
    shape = tuple(card.sample.shape)
    if card.sample.kind != "image" or len(shape) != 3 or shape[0] not in (1, 3):
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in paths):
            raise ProjectInputError(f"{card.name}: samples of shape {shape} are not images; give .npy files")
    out, sources, notes = [], [], []
    for path in paths:
        if path.suffix.lower() == ".npy":
            out.append(_read_npy(path, shape))
            sources += [f"{path}[{i}]" for i in range(len(out[-1]))]
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            x, note = _read_image(path, shape, card.sample.value_range, resize)
            out.append(x[None])
            sources.append(str(path))
            if note:
                notes.append(note)
        else:
            raise ProjectInputError(f"{path}: expected .png, .jpg, .jpeg or .npy")
    return np.ascontiguousarray(np.concatenate(out).astype(np.float32)), sources, notes


def class_indices(card: ModelCard, given: str | None, n: int) -> np.ndarray | None:
    """A conditional model's class for all n images (by name or index), from --class."""
    if card.condition is None:
        if given is not None:
            raise ProjectInputError(f"--class: {card.name} is not conditional")
        return None
    names = list(card.condition.names)
    if given is None:
        raise ProjectInputError(f"--class: {card.name} is conditional; name the images' class ({', '.join(names)})")
    if given in names:
        k = names.index(given)
    elif given.isdigit() and int(given) < card.condition.classes:
        k = int(given)
    else:
        raise ProjectInputError(f"--class: {given!r} is not one of {', '.join(names)}")
    return np.full(n, k, dtype=np.int64)


def _read_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ProjectInputError(f"{path}: not a readable .npy array ({e})") from None
    if tuple(a.shape) == shape:
        a = a[None]
    if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape or a.dtype.kind not in "fiu":
        raise ProjectInputError(f"{path}: shape {tuple(a.shape)} {a.dtype}; the model takes {shape} or (n, *{shape})")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ProjectInputError(f"{path}: holds NaN or infinite values")
    return a


def _read_image(path: Path, shape, value_range, resize: bool) -> tuple[np.ndarray, str]:
    from PIL import Image, UnidentifiedImageError

    channels, h, w = shape
    note = ""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (w, h):
                if not resize:
                    raise ProjectInputError(
                        f"{path}: {im.size[0]}x{im.size[1]}; the model takes {w}x{h} (pass --resize to resize it)"
                    )
                note = f"{path.name}: resized from {im.size[0]}x{im.size[1]} to {w}x{h} (Lanczos)"
                im = im.resize((w, h), Image.Resampling.LANCZOS)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as e:
        raise ProjectInputError(f"{path}: not a readable image ({e})") from None
    a = a[None] if channels == 1 else a.transpose(2, 0, 1)
    lo, hi = value_range
    return a * (hi - lo) + lo, note
