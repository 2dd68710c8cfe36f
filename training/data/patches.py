"""`patches`: an RGB texture dataset that lies on disk with our dependencies, so it needs no
download: the two sample photographs scikit-learn ships (`china.jpg`, `flower.jpg`, 427x640 RGB),
cut into square patches at native resolution (no resizing: the texture's own scale).

The split is spatial, so overlapping patches never straddle two splits: in each photograph the
left 80% of the columns give the training patches, the next 10% the validation patches and the
last 10% the test patches. Patches are cut every `stride` pixels inside each region; the same on
every run. Pixels are in [0, 1]. (scikit-image's sample photographs would add more, but it is not
part of our install and pulls in several packages; see docs/DESIGN.md.)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from training.data import DataError, DatasetInfo, Split

OPTIONS = {"size": (int, 32), "stride": (int, 8)}
# Column ranges of each split, as fractions of the photograph's width.
REGIONS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}


def _check(size: int, stride: int) -> None:
    if not 8 <= size <= 64:
        raise DataError(f"dataset_options.size: {size} is outside 8..64 for 'patches'")
    if not 1 <= stride <= size:
        raise DataError(f"dataset_options.stride: {stride} is outside 1..size ({size})")


def patches_info(size: int, stride: int) -> DatasetInfo:
    _check(size, stride)
    return DatasetInfo(
        "patches",
        (3, size, size),
        "image",
        (0.0, 1.0),
        f"{size}x{size} RGB patches (stride {stride}) of scikit-learn's two sample photographs, "
        "split by columns 80/10/10, pixels in [0, 1]",
    )


@lru_cache(maxsize=1)
def photographs() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    images = tuple(np.asarray(im, dtype=np.uint8) for im in load_sample_images().images)  # each (H, W, 3)
    for im in images:
        im.flags.writeable = False
    return images


def cut(image: np.ndarray, size: int, stride: int, columns: tuple[int, int]) -> np.ndarray:
    """Every size x size patch of `image` (H, W, 3) whose columns lie in [start, stop): (N, 3, size, size) uint8."""
    start, stop = columns
    h = image.shape[0]
    out = [
        image[r : r + size, c : c + size]
        for r in range(0, h - size + 1, stride)
        for c in range(start, stop - size + 1, stride)
    ]
    if not out:
        return np.zeros((0, 3, size, size), np.uint8)
    return np.stack(out).transpose(0, 3, 1, 2)  # (N, 3, size, size)


def load_patches(split: str, size: int, stride: int) -> Split:
    _check(size, stride)
    lo, hi = REGIONS[split]
    parts = []
    for im in photographs():
        w = im.shape[1]
        parts.append(cut(im, size, stride, (round(lo * w), round(hi * w))))
    x = np.concatenate(parts).astype(np.float32) / 255.0  # (N, 3, size, size) in [0, 1]
    if len(x) == 0:
        raise DataError(f"dataset_options.size: no {size}x{size} patch fits the {split} split")
    return Split(torch.from_numpy(x), None)
