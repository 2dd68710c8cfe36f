"""manifest.json: what a dataset folder holds, and the record that makes a shard count as complete.

A shard is complete when the manifest lists it and its files match the listed sizes and sha256s.
Every update re-reads the manifest on disk under a lock (an flock on `.manifest.lock`, so separate
processes writing parts of one dataset into a shared folder merge rather than overwrite each
other), adds the new shard records, and replaces the file atomically: write a temporary file,
fsync it, rename it over the old one. A reader sees the old manifest or the new one, never half.
On object storage (storage.py) the replacement is one PUT, and one writer per dataset is the rule.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.card import ModelCard, now_utc
from service.datasets.plan import DatasetSpec
from service.datasets.storage import LOCK, TMP_MARK, Storage, open_storage  # noqa: F401 (LOCK: named in docs and tests)
from service.datasets.writer import WrittenFile

MANIFEST = "manifest.json"
Where = Union[Path, str, Storage]  # a local folder, an fsspec URL, or an opened storage


class ManifestError(ValueError):
    """A manifest that cannot be read, or that describes another dataset; names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Strict):
    name: str
    version: str
    # What fixes the samples: generator.onnx's sha256; for a style-based model, the card's digest of
    # its mapping, synthesis and w_avg (ModelCard.generator_sha256), whose own digests follow.
    generator_sha256: str
    discriminator_sha256: Optional[str] = None  # None: a generator-only model
    ratio_sha256: Optional[str] = None  # ratio.onnx, the D that drs rejects by, where the card keeps one apart
    mapping_sha256: Optional[str] = None  # a style-based model's graphs and w_avg.npy
    synthesis_sha256: Optional[str] = None
    w_avg_sha256: Optional[str] = None


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
    made_on: Optional[str] = None  # the Ray node that made it (--ray runs), for the record
    # The engine that ran the graphs ("onnxruntime/CPUExecutionProvider", "openvino/CPU"; an HTTP
    # source: each replica's, joined): backends agree within float tolerance, not to the byte.
    engine: Optional[str] = None


class Totals(_Strict):
    shards: int  # in the whole dataset
    complete: int  # recorded in this manifest
    samples: int
    drawn: int
    acceptance: Optional[float]  # samples / drawn
    class_counts: Optional[list[int]] = None  # a conditional model: rows of each class in the complete shards
    engines: Optional[list[str]] = None  # the distinct engines of the complete shards (ShardRecord.engine)


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
    return ModelRef(
        name=card.name,
        version=card.version,
        generator_sha256=card.generator_sha256,
        discriminator_sha256=card.files["discriminator"].sha256 if card.has_discriminator else None,
        ratio_sha256=card.files["ratio"].sha256 if "ratio" in card.files else None,
        mapping_sha256=card.files["mapping"].sha256 if card.is_style else None,
        synthesis_sha256=card.files["synthesis"].sha256 if card.is_style else None,
        w_avg_sha256=card.style.w_avg.sha256 if card.is_style else None,
    )


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
    engines = sorted({s.engine for s in shards if s.engine}) or None
    totals = Totals(
        shards=spec.num_shards,
        complete=len(shards),
        samples=samples,
        drawn=drawn,
        acceptance=round(samples / drawn, 6) if drawn else None,
        class_counts=counts,
        engines=engines,
    )
    return Manifest(
        spec=spec, model=model_ref(card), sample=sample_info(card), shards=shards, totals=totals, updated_at=now_utc()
    )


def read_manifest(folder: Where) -> Optional[Manifest]:
    """The folder's manifest, None when it has none; ManifestError when it cannot be trusted."""
    store = open_storage(folder)
    path = f"{store}/{MANIFEST}"
    try:
        raw = store.read_text(MANIFEST)
    except OSError as e:
        raise ManifestError(f"{path}: unreadable ({e.strerror or e})") from None
    if raw is None:
        return None
    try:
        return Manifest.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as e:
        raise ManifestError(
            f"{path}: not a valid manifest ({str(e).splitlines()[0]}); remove it (and the "
            "shards, which it alone vouches for) to start over"
        ) from None


def check_same_dataset(existing: Manifest, spec: DatasetSpec, path: Where) -> None:
    """Refuse to add shards of one dataset to a folder that holds another."""
    if existing.spec == spec:
        return
    old, new = existing.spec.model_dump(), spec.model_dump()
    diffs = [f"{k}: {old[k]!r} there, {new[k]!r} now" for k in new if old.get(k) != new[k]]
    raise ManifestError(
        f"{open_storage(path)}/{MANIFEST} describes another dataset ({'; '.join(diffs)}): "
        "use another output folder, or the same options"
    )


def update(
    folder: Where, spec: DatasetSpec, card: ModelCard, add: list[ShardRecord] = (), drop: list[int] = ()
) -> Manifest:
    """Merge shard records into the manifest on disk (re-read under the lock), drop the records
    of shards found damaged, and write it back atomically. Returns what was written."""
    store = open_storage(folder)
    with store.locked():
        # A writer killed between writing its temporary manifest and renaming it leaves that file
        # behind. Every writer holds the lock while its temporary exists, so one found under the
        # lock belongs to a writer that died.
        store.remove_matching(f".{MANIFEST}{TMP_MARK}*")
        existing = read_manifest(store)
        if existing is not None:
            check_same_dataset(existing, spec, store)
        shards = {} if existing is None else existing.complete
        for index in drop:
            shards.pop(index, None)
        for record in add:
            shards[record.index] = record
        manifest = new_manifest(spec, card, list(shards.values()))
        store.write_text(MANIFEST, manifest.model_dump_json(indent=2) + "\n")
        return manifest
