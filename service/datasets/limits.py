"""How much disk a dataset takes, and the budget a server's dataset jobs must stay within.

A server writes datasets onto a volume it shares with everything else on it: a request for
10^8 MNIST samples (313 GB) was accepted and began filling a disk with 73 GB free (issue #20). The
task now refuses, before writing anything, a dataset over its budget (GANSERVE_DATASET_BUDGET_BYTES,
or by default GANSERVE_DATASET_DISK_SHARE of the free space), and checks again before each shard.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Optional

from service.datasets.plan import DatasetSpec

NPY_HEADER_BYTES = 128  # np.save's version 1.0 header, padded to 64-byte alignment
FS_BLOCK = 4096  # each PNG is a file of its own: it takes at least one filesystem block
PNG_OVERHEAD_BYTES = 70  # signature, IHDR, IDAT and IEND chunks; zlib's worst case adds ~0.03%


class DatasetTooLarge(ValueError):
    def __init__(self, problem: str):
        self.problem = problem
        super().__init__(problem)


def shard_bytes(spec: DatasetSpec, samples: int, sample_shape: list[int]) -> int:
    """An upper estimate of the disk one shard of `samples` rows takes (data, realness, classes)."""
    values = math.prod(sample_shape)
    if spec.format == "png":
        height = sample_shape[1] if len(sample_shape) == 3 else 1
        per_file = values + height + PNG_OVERHEAD_BYTES + values // 1000  # raw rows, filter bytes, chunks
        data = samples * math.ceil(per_file / FS_BLOCK) * FS_BLOCK
    else:
        data = NPY_HEADER_BYTES + samples * values * (1 if spec.dtype == "uint8" else 4)
    realness = NPY_HEADER_BYTES + 4 * samples if spec.realness else 0
    classes = NPY_HEADER_BYTES + 8 * samples if spec.classes else 0  # int64 class of each row
    return data + realness + classes


def dataset_bytes(spec: DatasetSpec, sample_shape: list[int], shards: Optional[list[int]] = None) -> int:
    """The estimate for the chosen shards (default: all)."""
    shards = range(spec.num_shards) if shards is None else shards
    return sum(shard_bytes(spec, spec.shard_request(i), sample_shape) for i in shards)


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def free_bytes(folder: Path) -> int:
    """Free space on the filesystem of `folder` (or of its nearest existing parent)."""
    target = Path(folder)
    while not target.exists() and target != target.parent:
        target = target.parent
    return shutil.disk_usage(target).free


def budget(folder: Path, explicit: Optional[int], share: float) -> tuple[int, str]:
    """The bytes a job may write, and how that figure was made (for the refusal's message)."""
    if explicit is not None:
        return explicit, "GANSERVE_DATASET_BUDGET_BYTES"
    free = free_bytes(folder)
    return int(free * share), f"{share:g} of the {human(free)} free on the output volume (GANSERVE_DATASET_DISK_SHARE)"


def existing_bytes(folder: Path) -> int:
    """What is already in the dataset's folder: a resumed job writes only what is missing."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class ShardGuard:
    """Checked before each shard is made: the job's writes stay within its budget, and the disk
    still has room for the shard (other writers share the volume)."""

    def __init__(self, folder: Path, spec: DatasetSpec, sample_shape: list[int], allowed: int):
        self.folder, self.spec, self.shape, self.allowed = folder, spec, sample_shape, allowed
        self.planned = 0

    def __call__(self, index: int) -> None:
        size = shard_bytes(self.spec, self.spec.shard_request(index), self.shape)
        if self.planned + size > self.allowed:
            raise DatasetTooLarge(
                f"shard {index} ({human(size)}) would take this job past its budget of {human(self.allowed)}"
            )
        free = free_bytes(self.folder)
        if size > free:
            raise DatasetTooLarge(f"shard {index} needs {human(size)}, the output volume has {human(free)} free")
        self.planned += size
