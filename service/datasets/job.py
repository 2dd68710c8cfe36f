"""The generation loop: the chosen shards, several at a time, each skipped when already complete
and verified, else made block by block from the source, written whole, and recorded in the
manifest. A progress bar shows samples/s. Interrupted (Ctrl-C, SIGTERM, a failed source), the
workers stop after their current block, leave no shard file behind, and the error propagates.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
from tqdm import tqdm

from service.core import sampling
from service.datasets import manifest as mf
from service.datasets import writer
from service.datasets.plan import DatasetSpec, shard_seed
from service.datasets.sources import Source
from service.datasets.storage import Storage, open_storage


class Interrupted(RuntimeError):
    """The job was asked to stop (a signal, or another shard's failure)."""


@dataclass
class JobResult:
    manifest: mf.Manifest
    made: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # complete and verified before this run
    repaired: list[int] = field(default_factory=list)  # recorded, but damaged: made again
    seconds: float = 0.0

    @property
    def samples_made(self) -> int:
        done = self.manifest.complete
        return sum(done[i].count for i in self.made + self.repaired if i in done)


def _stderr_line(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


class Job:
    def __init__(
        self,
        source: Source,
        spec: DatasetSpec,
        folder: Union[Path, str, Storage],
        workers: int = 2,
        progress: bool = True,
        say: Callable[[str], None] = _stderr_line,
        before_shard: Optional[Callable[[int], None]] = None,
    ):
        """`folder`: a local folder, an fsspec URL (s3://bucket/prefix) or an opened storage.
        `before_shard(index)`: called before a shard is made; what it raises stops the job (the
        server's task checks its disk budget there, datasets/limits.py)."""
        self.source, self.spec, self.store = source, spec, open_storage(folder)
        self.folder = self.store.folder if self.store.is_local else None  # local runs only
        self.before_shard = before_shard
        self.workers, self.progress, self.say = workers, progress, say
        self.stop = threading.Event()
        self._bar_lock = threading.Lock()
        self._bar: Optional[tqdm] = None
        self._accepted = self._drawn = 0

    def cancel(self) -> None:
        """Stop after the current block of each worker: no partial shard stays (a rerun resumes)."""
        self.stop.set()
        self.source.stop.set()

    @property
    def source_description(self) -> str:
        return self.source.description

    def close(self) -> None:
        """Release what the job started (nothing here; the Ray job stops its actors)."""

    def run(self, shards: Optional[list[int]] = None) -> JobResult:
        """Make every shard in `shards` (default: all) that is not already complete."""
        shards = list(range(self.spec.num_shards)) if shards is None else shards
        card = self.source.card
        started = time.perf_counter()
        self.store.ensure()
        # Written before any shard: the folder says which dataset it holds from the start.
        recorded = mf.update(self.store, self.spec, card).complete
        result = JobResult(manifest=None)
        total = sum(self.spec.shard_request(i) for i in shards)
        self._bar = tqdm(
            total=total,
            unit="sample",
            unit_scale=True,
            dynamic_ncols=True,
            smoothing=0.1,
            disable=not self.progress,
            desc=f"{card.name} -> {self.store.label}",
            file=sys.stderr,
        )
        try:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="shard") as pool:
                futures = {pool.submit(self._shard, i, recorded.get(i)): i for i in shards}
                try:
                    for future in as_completed(futures):
                        outcome = future.result()
                        getattr(result, outcome).append(futures[future])
                except BaseException:
                    # Stop the others after their current block; none writes a partial shard.
                    self.stop.set()
                    self.source.stop.set()
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            self._bar.close()
        result.manifest = mf.read_manifest(self.store)
        result.seconds = time.perf_counter() - started
        for name in ("made", "skipped", "repaired"):
            getattr(result, name).sort()
        return result

    def _advance(self, requested: int, accepted: int, drawn: int) -> None:
        with self._bar_lock:
            self._accepted += accepted
            self._drawn += drawn
            self._bar.update(requested)
            if self.spec.filter.active and self._drawn:
                self._bar.set_postfix(accepted=f"{self._accepted / self._drawn:.1%}", refresh=False)

    def _shard(self, index: int, record: Optional[mf.ShardRecord]) -> str:
        """Make one shard unless it is complete: returns made, skipped or repaired."""
        if self.stop.is_set():
            raise Interrupted(f"stopped before shard {index}")
        # Leftovers of a killed run, never complete (also beside shards that are: skipped ones).
        writer.remove_temporaries(self.store, writer.shard_stem(index, self.spec.num_shards))
        outcome = "made"
        if record is not None:
            problem = writer.verify(self.store, record.data.written())
            for extra in (record.realness, record.labels):
                if problem is None and extra is not None:
                    problem = writer.verify(self.store, extra.written())
            if problem is None:
                self._advance(record.requested, record.count, record.drawn)
                return "skipped"
            self.say(f"shard {index}: {problem}; making it again")
            mf.update(self.store, self.spec, self.source.card, drop=[index])
            outcome = "repaired"
        if self.before_shard is not None:
            self.before_shard(index)
        record = self._make(index)
        mf.update(self.store, self.spec, self.source.card, add=[record])
        return outcome

    def _make(self, index: int) -> mf.ShardRecord:
        """Make and write one shard, returning its record. The hook where the Ray job (ray_job.py)
        sends the shard to a worker instead; the manifest is written here, by the driver, alone."""
        return make_shard(self.source, self.spec, self.store, index, self.stop, self._advance)


def make_shard(
    source: Source,
    spec: DatasetSpec,
    store: Storage,
    index: int,
    stop: threading.Event,
    advance: Callable[[int, int, int], None] = lambda requested, accepted, drawn: None,
) -> mf.ShardRecord:
    """Shard `index` from the source into the storage: its files, written whole, and the record
    that the manifest will hold. Depends on (spec, index) alone, wherever it runs."""
    stem = writer.shard_stem(index, spec.num_shards)
    writer.remove_temporaries(store, stem)  # leftovers of a killed run, never complete
    # The shard is filled in place: memory per worker is one shard, whatever the dataset's size.
    want = spec.shard_request(index)
    condition = source.card.condition
    x = np.empty((want, *source.card.sample.shape), np.float32)  # (requested, *sample_shape)
    logits = np.empty(want, np.float32) if spec.realness else None  # (requested,)
    classes = np.empty(want, np.int64) if condition else None  # (requested,)
    count = drawn = 0
    for (seed, n), asked in zip(spec.blocks(index), spec.block_classes(index)):
        if stop.is_set():
            raise Interrupted(f"stopped during shard {index}")
        block = source.block(seed, n, spec, asked)
        k = len(block.samples)  # <= n: a filter may run out of draws
        x[count : count + k] = block.samples
        if logits is not None:
            logits[count : count + k] = block.logits
        if classes is not None:
            classes[count : count + k] = block.labels
        count += k
        drawn += block.drawn
        advance(n, k, block.drawn)
    x = x[:count]  # (count, *sample_shape)
    realness = sampling.realness(logits[:count]) if logits is not None else None
    classes = classes[:count] if classes is not None else None
    files = writer.write_shard(
        store,
        stem,
        spec,
        x,
        realness,
        source.card.sample.value_range,
        classes,
        first_row=index * spec.shard_size,
        class_names=list(condition.names) if condition else None,
    )
    counts = np.bincount(classes, minlength=condition.classes).tolist() if classes is not None else None
    return mf.ShardRecord(
        index=index,
        seed=shard_seed(spec.base_seed, index),
        requested=spec.shard_request(index),
        count=len(x),
        drawn=drawn,
        data=_file_record(files.data),
        realness=_file_record(files.realness) if files.realness else None,
        labels=_file_record(files.labels) if files.labels else None,
        class_counts=counts,
        engine=source.engine,
    )


def _file_record(written: writer.WrittenFile) -> mf.FileRecord:
    return mf.FileRecord(file=written.file, bytes=written.bytes, sha256=written.sha256)
