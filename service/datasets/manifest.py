"""manifest.json: what a dataset folder holds, and the record that makes a shard count as complete.

A shard is complete when the manifest lists it and its files match the listed sizes and sha256s.
Every update re-reads the manifest on disk under a lock (an flock on `.manifest.lock`, so separate
processes writing parts of one dataset into a shared folder merge rather than overwrite each
other), adds the new shard records, and replaces the file atomically: write a temporary file,
fsync it, rename it over the old one. A reader sees the old manifest or the new one, never half.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.card import ModelCard, now_utc

from .plan import DatasetSpec
from .writer import WrittenFile

MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
_process_lock = threading.Lock()  # flock does not order threads sharing one process's lock file


class ManifestError(ValueError):
    """A manifest that cannot be read, or that describes another dataset; names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    name: str
    version: str
    generator_sha256: str
    discriminator_sha256: Optional[str] = None  # None: a generator-only model


class SampleInfo(_Strict):
    kind: Literal["image", "vector"]
    shape: list[int]  # of one row (the stored arrays are (count, *shape))
    value_range: tuple[float, float]  # of the float32 samples; uint8 maps it onto 0..255


class FileRecord(_Strict):
    file: str
    bytes: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def written(self) -> WrittenFile:
        return WrittenFile(self.file, self.bytes, self.sha256)


class ShardRecord(_Strict):
    index: int = Field(ge=0)
    seed: int  # blocks' seeds derive from it (plan.py)
    requested: int = Field(ge=1)
    count: int = Field(ge=0)  # rows stored: fewer than requested when a filter ran out of draws
    drawn: int = Field(ge=0)  # latents drawn to get them (== requested without a filter)
    data: FileRecord
    realness: Optional[FileRecord] = None  # D's realness of each row, when the spec asks for it
    labels: Optional[FileRecord] = None  # a conditional model's class of each row (int64)
    class_counts: Optional[list[int]] = None  # rows of each class, by index


class Totals(_Strict):
    shards: int  # in the whole dataset
    complete: int  # recorded in this manifest
    samples: int
    drawn: int
    acceptance: Optional[float]  # samples / drawn
    class_counts: Optional[list[int]] = None  # a conditional model: rows of each class in the complete shards


class Manifest(_Strict):
    # 2: class labels beside the shards; version 1's `labels` (D's realness) is read as `realness`.
    manifest_version: Literal[1, 2] = 2
    spec: DatasetSpec
    model: ModelRef
    sample: SampleInfo
    shards: list[ShardRecord]
    totals: Totals
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _version_1(cls, data):
        if isinstance(data, dict) and data.get("manifest_version", 1) == 1:
            shards = []
            for shard in data.get("shards", []):
                if isinstance(shard, dict) and "labels" in shard:
                    shard = {k: v for k, v in shard.items() if k != "labels"} | {"realness": shard["labels"]}
                shards.append(shard)
            data = {**data, "shards": shards, "manifest_version": 2}
        return data

    @property
    def complete(self) -> dict[int, ShardRecord]:
        return {s.index: s for s in self.shards}


def model_ref(card: ModelCard) -> ModelRef:
    return ModelRef(name=card.name, version=card.version, generator_sha256=card.files["generator"].sha256,
                    discriminator_sha256=card.files["discriminator"].sha256 if card.has_discriminator else None)


def sample_info(card: ModelCard) -> SampleInfo:
    return SampleInfo(kind=card.sample.kind, shape=card.sample.shape, value_range=card.sample.value_range)


def new_manifest(spec: DatasetSpec, card: ModelCard, shards: list[ShardRecord] = ()) -> Manifest:
    shards = sorted(shards, key=lambda s: s.index)
    samples, drawn = sum(s.count for s in shards), sum(s.drawn for s in shards)
    counts = None
    if card.condition is not None:
        counts = [0] * card.condition.classes
        for s in shards:
            for k, v in enumerate(s.class_counts or []):
                counts[k] += v
    totals = Totals(shards=spec.num_shards, complete=len(shards), samples=samples, drawn=drawn,
                    acceptance=round(samples / drawn, 6) if drawn else None, class_counts=counts)
    return Manifest(spec=spec, model=model_ref(card), sample=sample_info(card), shards=shards, totals=totals,
                    updated_at=now_utc())


def read_manifest(folder: Path) -> Optional[Manifest]:
    """The folder's manifest, None when it has none; ManifestError when it cannot be trusted."""
    path = folder / MANIFEST
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ManifestError(f"{path}: unreadable ({e.strerror})") from None
    try:
        return Manifest.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as e:
        raise ManifestError(f"{path}: not a valid manifest ({str(e).splitlines()[0]}); remove it (and the "
                            "shards, which it alone vouches for) to start over") from None


def check_same_dataset(existing: Manifest, spec: DatasetSpec, path: Path) -> None:
    """Refuse to add shards of one dataset to a folder that holds another."""
    if existing.spec == spec:
        return
    old, new = existing.spec.model_dump(), spec.model_dump()
    diffs = [f"{k}: {old[k]!r} there, {new[k]!r} now" for k in new if old.get(k) != new[k]]
    raise ManifestError(f"{path / MANIFEST} describes another dataset ({'; '.join(diffs)}): "
                        "use another output folder, or the same options")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_dead_writers_temporaries(folder: Path) -> None:
    """A writer killed between writing its temporary manifest and renaming it leaves that file
    behind. Every writer holds the lock while its temporary exists, so one found under the lock
    belongs to a writer that died."""
    for path in folder.glob(f".{MANIFEST}.tmp-*"):
        path.unlink(missing_ok=True)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with _process_lock, open(folder / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(folder: Path, spec: DatasetSpec, card: ModelCard, add: list[ShardRecord] = (),
           drop: list[int] = ()) -> Manifest:
    """Merge shard records into the manifest on disk (re-read under the lock), drop the records
    of shards found damaged, and write it back atomically. Returns what was written."""
    with _locked(folder):
        _remove_dead_writers_temporaries(folder)
        existing = read_manifest(folder)
        if existing is not None:
            check_same_dataset(existing, spec, folder)
        shards = {} if existing is None else existing.complete
        for index in drop:
            shards.pop(index, None)
        for record in add:
            shards[record.index] = record
        manifest = new_manifest(spec, card, list(shards.values()))
        _write_atomically(folder / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
        return manifest
