"""Shard files, written so that nothing half-written ever looks complete.

Each file goes to a hidden temporary name beside its final one (`.shard-00017.npy.tmp-<pid>-<n>`),
is fsynced, checksummed as it is written, and renamed into place only when whole; a PNG shard is a
folder built the same way. A crash leaves at worst a hidden `.tmp-` entry, which the next run
removes, and a shard only counts as complete once the manifest records its checksum (manifest.py).

Checksums: the sha256 of an .npy file's bytes; for a PNG folder, the sha256 of its listing (each
file's name and sha256, one line each, in name order), so renaming or swapping files is caught.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np

from ..encoding import png_bytes, to_uint8
from .plan import DatasetSpec

TMP_MARK = ".tmp-"
_serial = itertools.count()  # distinct temporary names for threads of one process


@dataclass(frozen=True)
class WrittenFile:
    file: str  # name relative to the dataset folder
    bytes: int
    sha256: str


def shard_stem(index: int, num_shards: int) -> str:
    """`shard-00017`: zero-padded so that names sort in shard order."""
    return f"shard-{index:0{max(5, len(str(num_shards - 1)))}d}"


def data_name(stem: str, spec: DatasetSpec) -> str:
    return stem if spec.format == "png" else f"{stem}.npy"


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


def _temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{next(_serial)}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_npy(folder: Path, name: str, array: np.ndarray) -> WrittenFile:
    """Write `array` as folder/name via a temporary file; return its size and sha256."""
    final = folder / name
    tmp = _temp_path(final)
    try:
        with open(tmp, "wb") as f:
            hashing = _HashingFile(f)
            np.save(hashing, np.ascontiguousarray(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # only left when something above failed
    return WrittenFile(name, hashing.size, hashing.digest.hexdigest())


def _listing_digest(entries: list[tuple[str, str]]) -> str:
    text = "".join(f"{name} {sha}\n" for name, sha in sorted(entries))
    return hashlib.sha256(text.encode()).hexdigest()


def write_png_folder(folder: Path, name: str, images: np.ndarray) -> WrittenFile:
    """(n, C, H, W) uint8 images -> folder/name/000000.png ..., built under a temporary name."""
    final = folder / name
    tmp = _temp_path(final)
    width = max(6, len(str(len(images) - 1)))
    try:
        tmp.mkdir()
        entries, total = [], 0
        for i, image in enumerate(images):
            data = png_bytes(image.transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)
            fname = f"{i:0{width}d}.png"
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            entries.append((fname, hashlib.sha256(data).hexdigest()))
            total += len(data)
        _fsync_dir(tmp)
        if final.exists():  # a damaged earlier copy: move it aside, then drop it
            old = _temp_path(final)
            os.replace(final, old)
            shutil.rmtree(old)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return WrittenFile(name, max(total, 1), _listing_digest(entries))


@dataclass(frozen=True)
class ShardFiles:
    data: WrittenFile
    realness: Optional[WrittenFile]
    labels: Optional[WrittenFile] = None


def write_shard(folder: Path, stem: str, spec: DatasetSpec, samples: np.ndarray,
                realness: Optional[np.ndarray], value_range: tuple[float, float],
                classes: Optional[np.ndarray] = None) -> ShardFiles:
    """samples: (n, *sample_shape) float32; realness: (n,) float32 when the spec asks for it;
    classes: (n,) int64 of a conditional model's rows."""
    array = to_uint8(samples, value_range) if spec.dtype == "uint8" else samples.astype(np.float32, copy=False)
    if spec.format == "png":
        data = write_png_folder(folder, data_name(stem, spec), array)
    else:
        data = write_npy(folder, data_name(stem, spec), array)
    scores = write_npy(folder, realness_name(stem), realness.astype(np.float32)) if spec.realness else None
    labels = write_npy(folder, labels_name(stem), classes.astype(np.int64)) if classes is not None else None
    _fsync_dir(folder)
    return ShardFiles(data, scores, labels)


def checksum(path: Path) -> tuple[int, str]:
    """(bytes, sha256) of a shard file or PNG folder, computed the way the writer computed it."""
    if path.is_dir():
        entries, total = [], 0
        for child in sorted(path.iterdir()):
            if not child.is_file():
                raise OSError(f"{child} is not a file")
            data = child.read_bytes()
            entries.append((child.name, hashlib.sha256(data).hexdigest()))
            total += len(data)
        return max(total, 1), _listing_digest(entries)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def verify(folder: Path, expected: WrittenFile) -> Optional[str]:
    """None when folder/file is whole and matches; else what is wrong with it."""
    path = folder / expected.file
    if not path.exists():
        return f"{expected.file} is missing"
    try:
        size, sha = checksum(path)
    except OSError as e:
        return f"{expected.file} is unreadable ({e})"
    if size != expected.bytes:
        return f"{expected.file} is {size} bytes, the manifest says {expected.bytes}"
    if sha != expected.sha256:
        return f"{expected.file} does not match its sha256 in the manifest (damaged)"
    return None


def remove_temporaries(folder: Path, stem: Optional[str] = None) -> int:
    """Delete leftovers of interrupted writes (of one shard, or all); returns how many."""
    removed = 0
    pattern = f".{stem}.*{TMP_MARK}*" if stem else f".*{TMP_MARK}*"
    for path in folder.glob(pattern):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed
