"""Full MNIST from the IDX files in a directory the user names, with the paper's split:
train = training images [0:50000], valid = [50000:60000], test = the 10,000 t10k images.

Files may be gzipped (`train-images-idx3-ubyte.gz`). Nothing is downloaded. A missing, truncated
or malformed file is a DataError naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from training.data import DataError, DatasetInfo, Split
from training.data.resize import fit_size

OPTIONS = {"path": (str, None), "size": (int, 28)}
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TRAIN_END = 50_000  # the paper's split of the 60,000 training images
UBYTE = 0x08


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / stem}: missing (neither {stem} nor {stem}.gz is in {folder})")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """One IDX array of unsigned bytes with `ndim` dimensions, checked against its own header."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated ({len(raw)} bytes, no IDX header)")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != UBYTE or dims != ndim:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) (magic {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {what} (header says {shape}: {expected} bytes, file has {len(raw)})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _folder(path: str | None) -> Path:
    if path is None:
        raise DataError(
            "dataset_options.path: the mnist dataset needs the directory of its IDX files "
            "(--set dataset_options.path=DIR)"
        )
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory (dataset_options.path)")
    return folder


def mnist_info(path: str | None, size: int) -> DatasetInfo:
    return DatasetInfo(
        "mnist",
        (1, size, size),
        "image",
        (0.0, 1.0),
        "MNIST from IDX files, the paper's 50000/10000/10000 split, pixels in [0, 1]",
        tuple(str(d) for d in range(10)),
    )


def load_mnist(split: str, path: str | None, size: int) -> Split:
    folder = _folder(path)
    img_stem, lab_stem = FILES["test" if split == "test" else "train"]
    img_path, lab_path = _find(folder, img_stem), _find(folder, lab_stem)
    images, labels = read_idx(img_path, 3), read_idx(lab_path, 1)  # (N, H, W), (N,)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{img_path}: images are {images.shape[1]}x{images.shape[2]}, MNIST's are 28x28")
    if len(images) != len(labels):
        raise DataError(f"{lab_path}: {len(labels)} labels for {len(images)} images in {img_path.name}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lab_path}: label {int(labels.max())} is not a digit 0..9")
    if split != "test":
        # Fewer than 60,000 images (a tiny test set) keep the paper's 5:1 proportion.
        end = TRAIN_END if len(images) >= 60_000 else (len(images) * 5) // 6
        keep = slice(0, end) if split == "train" else slice(end, None)
        images, labels = images[keep], labels[keep]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return Split(fit_size(x, size), torch.from_numpy(labels.astype(np.int64)))
