"""A folder of the user's own PNG / JPEG images (searched recursively), resized to a square,
grayscale or RGB, pixels in [0, 1]. The split is a seeded permutation of the sorted file names:
10% valid, 10% test, the rest train, so it is the same on every run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.data import DataError, DatasetInfo, Split

OPTIONS = {"path": (str, None), "size": (int, 32), "channels": (int, 3)}
SUFFIXES = {".png", ".jpg", ".jpeg"}
SPLIT_SEED = 0


def _check(path: str | None, size: int, channels: int) -> Path:
    if path is None:
        raise DataError(
            "dataset_options.path: the folder dataset needs a directory of images (--set dataset_options.path=DIR)"
        )
    if channels not in (1, 3):
        raise DataError(f"dataset_options.channels: must be 1 or 3, got {channels}")
    if not 4 <= size <= 1024:
        raise DataError(f"dataset_options.size: {size} is outside 4..1024")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory (dataset_options.path)")
    return folder


def folder_info(path: str | None, size: int, channels: int) -> DatasetInfo:
    return DatasetInfo(
        "folder",
        (channels, size, size),
        "image",
        (0.0, 1.0),
        f"images from {path}, {'RGB' if channels == 3 else 'grayscale'} {size}x{size}",
    )


def _files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder}: no .png / .jpg / .jpeg images (dataset_options.path)")
    return files


def _split_files(files: list[Path], split: str) -> list[Path]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(files))
    n_hold = len(files) // 10
    parts = {"valid": order[:n_hold], "test": order[n_hold : 2 * n_hold], "train": order[2 * n_hold :]}
    return [files[i] for i in sorted(parts[split])]


def _read(path: Path, size: int, channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.LANCZOS)
            a = np.asarray(im, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return a[None] if channels == 1 else a.transpose(2, 0, 1)  # (C, H, W)


def load_folder(split: str, path: str | None, size: int, channels: int) -> Split:
    files = _split_files(_files(_check(path, size, channels)), split)
    x = np.stack([_read(p, size, channels) for p in files]) if files else np.zeros((0, channels, size, size))
    return Split(torch.from_numpy(x.astype(np.float32)), None)  # (N, C, size, size)
