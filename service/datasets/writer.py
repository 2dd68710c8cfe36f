"""Shard files, written so that nothing half-written ever looks complete.

Each file goes to a hidden temporary name beside its final one (`.shard-00017.npy.tmp-<pid>-<n>`),
is fsynced, checksummed as it is written, and renamed into place only when whole; a PNG shard is a
folder built the same way. A crash leaves at worst a hidden `.tmp-` entry, which the next run
removes, and a shard only counts as complete once the manifest records its checksum (manifest.py).

Checksums: the sha256 of an .npy file's bytes; for a PNG folder, the sha256 of its listing (each
file's name and sha256, one line each, in name order), so renaming or swapping files is caught.

Where the files go (a local folder, or object storage through fsspec) is storage.py's business:
these functions only ask it for a file that appears whole or not at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Optional

import numpy as np

from service.core.encoding import png_bytes, to_uint8
from service.datasets import formats
from service.datasets.plan import DatasetSpec
from service.datasets.storage import TMP_MARK, Storage


@dataclass(frozen=True)
class WrittenFile:
    file: str  # name relative to the dataset folder
    bytes: int
    sha256: str


def shard_stem(index: int, num_shards: int) -> str:
    """`shard-00017`: zero-padded so that names sort in shard order."""
    return f"shard-{index:0{max(5, len(str(num_shards - 1)))}d}"


def data_name(stem: str, spec: DatasetSpec) -> str:
    return stem if spec.format == "png" else f"{stem}.{formats.SUFFIX.get(spec.format, 'npy')}"


def realness_name(stem: str) -> str:
    return f"{stem}.realness.npy"


def labels_name(stem: str) -> str:
    """A conditional model's class of each row: int64 (count,), row for row with the samples."""
    return f"{stem}.labels.npy"


class _HashingFile:
    """A write-only file object that feeds every byte to sha256 on its way to disk."""

    def __init__(self, f: BinaryIO):
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        return self.f.write(view)


def write_npy(store: Storage, name: str, array: np.ndarray) -> WrittenFile:
    """Write `array` as name, whole or not at all; return its size and sha256."""
    with store.writer(name) as f:
        hashing = _HashingFile(f)
        np.save(hashing, np.ascontiguousarray(array), allow_pickle=False)
    return WrittenFile(name, hashing.size, hashing.digest.hexdigest())


def write_bytes(store: Storage, name: str, data: bytes) -> WrittenFile:
    """A file made in memory (a Parquet or tar shard), whole or not at all."""
    with store.writer(name) as f:
        f.write(data)
    return WrittenFile(name, len(data), hashlib.sha256(data).hexdigest())


def _listing_digest(entries: list[tuple[str, str]]) -> str:
    text = "".join(f"{name} {sha}\n" for name, sha in sorted(entries))
    return hashlib.sha256(text.encode()).hexdigest()


def write_png_folder(store: Storage, name: str, images: np.ndarray) -> WrittenFile:
    """(n, C, H, W) uint8 images -> name/000000.png ..., visible only when whole where the storage allows."""
    width = max(6, len(str(len(images) - 1)))
    entries, total = [], 0
    with store.folder_writer(name) as folder:
        for i, image in enumerate(images):
            data = png_bytes(image.transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)
            fname = f"{i:0{width}d}.png"
            folder.put(fname, data)
            entries.append((fname, hashlib.sha256(data).hexdigest()))
            total += len(data)
    return WrittenFile(name, max(total, 1), _listing_digest(entries))


@dataclass(frozen=True)
class ShardFiles:
    data: WrittenFile
    realness: Optional[WrittenFile]
    labels: Optional[WrittenFile] = None


def write_shard(
    store: Storage,
    stem: str,
    spec: DatasetSpec,
    samples: np.ndarray,
    realness: Optional[np.ndarray],
    value_range: tuple[float, float],
    classes: Optional[np.ndarray] = None,
    first_row: int = 0,
    class_names: Optional[list[str]] = None,
) -> ShardFiles:
    """samples: (n, *sample_shape) float32; realness: (n,) float32 when the spec asks for it;
    classes: (n,) int64 of a conditional model's rows; first_row: the shard's first row in the
    whole dataset (WebDataset keys)."""
    array = to_uint8(samples, value_range) if spec.dtype == "uint8" else samples.astype(np.float32, copy=False)
    if spec.format in formats.SUFFIX:  # one self-describing file per shard, realness and classes inside it
        data = write_bytes(
            store, data_name(stem, spec), formats.encode(spec, first_row, array, realness, classes, class_names)
        )
        return ShardFiles(data, None)
    if spec.format == "png":
        data = write_png_folder(store, data_name(stem, spec), array)
    else:
        data = write_npy(store, data_name(stem, spec), array)
    scores = write_npy(store, realness_name(stem), realness.astype(np.float32)) if spec.realness else None
    labels = write_npy(store, labels_name(stem), classes.astype(np.int64)) if classes is not None else None
    return ShardFiles(data, scores, labels)


def checksum(store: Storage, name: str) -> tuple[int, str]:
    """(bytes, sha256) of a shard file or PNG folder, computed the way the writer computed it."""
    if store.is_folder(name):
        entries, total = [], 0
        for child in store.list_folder(name):
            with store.open_read(f"{name}/{child}") as f:
                data = f.read()
            entries.append((child, hashlib.sha256(data).hexdigest()))
            total += len(data)
        return max(total, 1), _listing_digest(entries)
    digest, size = hashlib.sha256(), 0
    with store.open_read(name) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def verify(store: Storage, expected: WrittenFile) -> Optional[str]:
    """None when the file is whole and matches; else what is wrong with it."""
    try:
        if not store.exists(expected.file):
            return f"{expected.file} is missing"
        size, sha = checksum(store, expected.file)
    except OSError as e:
        return f"{expected.file} is unreadable ({e})"
    if size != expected.bytes:
        return f"{expected.file} is {size} bytes, the manifest says {expected.bytes}"
    if sha != expected.sha256:
        return f"{expected.file} does not match its sha256 in the manifest (damaged)"
    return None


def remove_temporaries(store: Storage, stem: Optional[str] = None) -> int:
    """Delete leftovers of interrupted writes (of one shard, or all); returns how many."""
    return store.remove_matching(f".{stem}.*{TMP_MARK}*" if stem else f".*{TMP_MARK}*")
