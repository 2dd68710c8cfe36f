"""Named, offline datasets with deterministic train / valid / test splits.

`load_dataset(name, split, **options)` returns a `Split` (x float32 (N, *sample_shape), y int64
labels or None). Images are [C, H, W] in [0, 1]; vectors are (N, d). Every failure a user can
cause (a missing file, a bad option) is a `DataError` whose message names the dataset, the option
or the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch

SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """Bad data or bad dataset options; the message names the file, dataset or option."""


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32 (N, *sample_shape), within the dataset's value_range
    y: Optional[torch.Tensor]  # int64 (N,) class labels where the dataset has them


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    sample_shape: tuple[int, ...]
    kind: str  # "image" | "vector"
    value_range: tuple[float, float]
    description: str
    # The classes its labels index, by name ("0".."9" for digits, "mode0".. for the mixtures); empty
    # for a dataset without labels. A conditional run (`conditional=true`) needs them.
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Family:
    """One dataset: its options (name -> (type, default)), its info and its loader."""

    options: dict[str, tuple[type, Any]]
    info: Callable[..., DatasetInfo]
    load: Callable[..., Split]


def _registry() -> dict[str, _Family]:
    # Imported lazily so `import training.data` stays cheap (mlxtend, sklearn, PIL load on use).
    from training.data import emoji, folder, idx, patches, small, toy

    return {
        "toy1d": _Family({}, toy.toy1d_info, toy.load_toy1d),
        "ring8": _Family({}, lambda: toy.mixture_info("ring8"), lambda split: toy.load_mixture("ring8", split)),
        "grid25": _Family({}, lambda: toy.mixture_info("grid25"), lambda split: toy.load_mixture("grid25", split)),
        "digits": _Family(small.DIGITS_OPTIONS, small.digits_info, small.load_digits),
        "mnist5k": _Family(small.MNIST5K_OPTIONS, small.mnist5k_info, small.load_mnist5k),
        "mnist": _Family(idx.OPTIONS, idx.mnist_info, idx.load_mnist),
        "folder": _Family(folder.OPTIONS, folder.folder_info, folder.load_folder),
        "patches": _Family(patches.OPTIONS, patches.patches_info, patches.load_patches),
        "emoji": _Family(emoji.OPTIONS, emoji.emoji_info, emoji.load_emoji),
    }


DATASETS: tuple[str, ...] = ("toy1d", "ring8", "grid25", "digits", "mnist5k", "mnist", "folder", "patches", "emoji")


def _family(name: str) -> _Family:
    if name not in DATASETS:
        raise DataError(f"dataset: unknown name {name!r}; known: {', '.join(DATASETS)}")
    return _registry()[name]


def dataset_options(name: str) -> dict[str, tuple[type, Any]]:
    """The options a dataset takes: option name -> (type, default). Defaults of None are required
    or optional paths; see each family's module."""
    return dict(_family(name).options)


def check_options(name: str, options: dict) -> dict:
    """Options with defaults filled in; an unknown option or a wrong type is a DataError naming it."""
    known = _family(name).options
    out = {}
    for key, value in options.items():
        if key not in known:
            allowed = ", ".join(known) or "none"
            raise DataError(f"dataset_options.{key}: unknown option for {name!r} (allowed: {allowed})")
        typ = known[key][0]
        if value is not None and not (isinstance(value, typ) and not (typ is int and isinstance(value, bool))):
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            else:
                raise DataError(f"dataset_options.{key}: expected {typ.__name__}, got {value!r}")
        out[key] = value
    for key, (_, default) in known.items():
        out.setdefault(key, default)
    return out


def dataset_info(name: str, **options) -> DatasetInfo:
    return _family(name).info(**check_options(name, options))


def load_dataset(name: str, split: str, **options) -> Split:
    if split not in SPLITS:
        raise DataError(f"split: {split!r} is not one of {', '.join(SPLITS)}")
    return _family(name).load(split, **check_options(name, options))


__all__ = [
    "DATASETS",
    "SPLITS",
    "DataError",
    "DatasetInfo",
    "Split",
    "check_options",
    "dataset_info",
    "dataset_options",
    "load_dataset",
]
