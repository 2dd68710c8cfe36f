"""`generate --ray`: the dataset job with its shards made by Ray actors.

Each actor loads the model once (the service's own engine, `Engine.from_folder`: onnxruntime, on
a GPU when the cluster offers one) from the model folder's files, which the driver puts in Ray's
object store, so the nodes need no copy of `models/`. An actor makes a whole shard with the very
function the local job uses (`job.make_shard`), writes its files straight to the storage (a
shared folder, or s3://...) and returns only the shard's record: nothing of the samples passes
through the driver, whose memory stays flat whatever the dataset's size.

The driver is the local job (job.py) with one hook changed (`_make`): it still verifies the
shards already recorded, skips complete ones, and alone writes the manifest. A worker that dies
mid-shard (its node lost, its process killed) loses that shard only: Ray restarts the actor
(reloading the model) and the driver sends the shard again, to whichever actor is free. Since a
shard depends on (spec, index) alone, the bytes are the local path's, whatever the number of
workers or nodes and whichever of them made a shard (`made_on` in the manifest records which).
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from models.card import CARD_FILE, ModelCard
from service.datasets import manifest as mf
from service.datasets.job import Interrupted, Job, make_shard
from service.datasets.plan import DatasetSpec
from service.datasets.sources import Source, SourceError, open_local
from service.datasets.storage import Storage, StorageSpec

ATTEMPTS = 3  # a shard whose worker died is sent again, at most this many times in all
ACTOR_RESTARTS = 4  # each actor; a restart reloads the model


def model_files(folder: Path, card: ModelCard) -> dict[str, bytes]:
    """The card and the graphs it names: all a worker needs to load the model (checked there)."""
    names = [CARD_FILE, *(f.name for f in card.files.values())]
    return {name: (folder / name).read_bytes() for name in names}


@ray.remote
class ShardWorker:
    """One model load, then shard after shard."""

    def __init__(
        self,
        name: str,
        files: list,
        device: str,
        threads: int,
        max_draws_factor: int,
        spec_json: str,
        storage: StorageSpec,
    ):
        # files: [a reference to {name: bytes}], nested so that Ray does not treat the model as a
        # constructor argument that a restart could lose; the driver keeps the object alive.
        self._dir = tempfile.TemporaryDirectory(prefix="ganserve-model-")
        folder = Path(self._dir.name) / name
        folder.mkdir()
        for fname, data in ray.get(files[0]).items():
            (folder / fname).write_bytes(data)
        self.source = open_local(folder, device, threads, max_draws_factor)  # verified against its card
        self.spec = DatasetSpec.model_validate_json(spec_json)
        self.store = storage.open()
        self.never = threading.Event()  # the driver stops a shard by cancelling the task

    def where(self) -> dict:
        context = ray.get_runtime_context()
        return {"node": context.get_node_id(), "pid": os.getpid(), "provider": self.source.model.provider}

    def make(self, index: int) -> tuple[str, str, float]:
        """Shard `index` written to the storage; returns (its record as JSON, node id, seconds)."""
        started = time.perf_counter()
        record = make_shard(self.source, self.spec, self.store, index, self.never)
        return record.model_dump_json(), ray.get_runtime_context().get_node_id(), time.perf_counter() - started


class RayJob(Job):
    """Job whose shards are made by Ray actors; `workers` is the number of actors."""

    def __init__(
        self,
        source: Source,
        spec: DatasetSpec,
        store: Storage,
        actors: list,
        started_ray: bool,
        files,
        progress: bool = True,
        **kwargs,
    ):
        super().__init__(source, spec, store, workers=len(actors), progress=progress, **kwargs)
        self.actors, self.started_ray = actors, started_ray
        self.files = files  # the model in the object store: restarted actors load it again
        self.alive = len(actors)  # actors not given up on (Ray restarts each up to ACTOR_RESTARTS)
        self.idle: queue.Queue = queue.Queue()
        for actor in actors:
            self.idle.put(actor)
        self.placed: dict[int, str] = {}  # shard -> node id (also in the manifest's made_on)
        self.task_seconds: list[float] = []  # time inside the actors, per shard
        self.wall_seconds: list[float] = []  # as the driver sees it: + scheduling, transfer, queueing
        self.redone = 0  # shards sent again after their worker died

    @classmethod
    def start(
        cls,
        address: str,
        model_dir: Path,
        source: Source,
        spec: DatasetSpec,
        store: Storage,
        workers: Optional[int] = None,
        threads: Optional[int] = None,
        device: str = "auto",
        progress: bool = True,
    ) -> RayJob:
        """Connect to (or start) Ray, start the actors and wait until each has loaded the model."""
        started_ray = False
        if not ray.is_initialized():
            ray.init(
                address=None if address == "local" else address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            started_ray = True
        try:
            if store.is_local and address != "local":
                print(
                    f"ray: writing to {store}: every node must see this folder (a shared mount), "
                    "or use an object store URL",
                    file=sys.stderr,
                )
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
            if gpus:  # one actor per GPU; onnxruntime's CUDA provider in each
                options, count, device = {"num_gpus": 1, "num_cpus": 1}, workers or gpus, "cuda"
            else:
                per = threads or 1
                options, count = {"num_cpus": per}, workers or max(1, int(resources.get("CPU", 1)) // per)
                device = "cpu"
            threads = threads or options["num_cpus"]
            files = ray.put(model_files(Path(model_dir).resolve(), source.card))
            storage = store.spec()  # an absolute path or a URL, with its fsspec options
            actors = [
                ShardWorker.options(
                    max_restarts=ACTOR_RESTARTS, max_task_retries=0, scheduling_strategy="SPREAD", **options
                ).remote(
                    source.card.name, [files], device, threads, source.max_draws_factor, spec.model_dump_json(), storage
                )
                for _ in range(count)
            ]
            try:
                where = ray.get([a.where.remote() for a in actors])
            except RayActorError as e:
                raise SourceError(f"ray: a worker could not load the model: {e}") from None
            for i, w in enumerate(where):
                print(
                    f"ray: worker {i} on node {w['node'][:12]} (pid {w['pid']}) loaded {source.card.name} "
                    f"on {w['provider']}",
                    file=sys.stderr,
                    flush=True,
                )
        except BaseException:
            if started_ray:
                ray.shutdown()
            raise
        job = cls(source, spec, store, actors, started_ray, files, progress=progress)
        job.nodes = sorted({w["node"] for w in where})
        return job

    @property
    def source_description(self) -> str:
        return (
            f"{len(self.actors)} Ray worker(s) on {len(self.nodes)} node(s) "
            f"(model {self.source.card.name} {self.source.card.version})"
        )

    def _idle_actor(self):
        """An actor ready for a shard; waits while others work or restart."""
        while True:
            try:
                return self.idle.get(timeout=0.5)
            except queue.Empty:
                if self.stop.is_set():
                    raise Interrupted("stopped while waiting for a worker") from None
                if self.alive == 0:
                    raise SourceError("ray: every worker died and could not be restarted") from None

    def _revive(self, actor) -> None:
        """After a death, hand the actor out again once Ray has restarted it (model loaded)."""
        while not self.stop.is_set():
            try:
                w = ray.get(actor.where.remote())
            except ActorUnavailableError:  # still restarting
                time.sleep(0.5)
                continue
            except RayActorError as e:  # restarts used up: never hand it out again
                with self._bar_lock:
                    self.alive -= 1
                self.say(f"ray: a worker is gone for good ({str(e).splitlines()[0][:160]})")
                return
            self.say(f"ray: a worker restarted on node {w['node'][:12]} (pid {w['pid']})")
            self.idle.put(actor)
            return

    def _make(self, index: int) -> mf.ShardRecord:
        for attempt in range(1, ATTEMPTS + 1):
            actor = self._idle_actor()
            sent = time.perf_counter()
            ref = actor.make.remote(index)
            try:
                while not ray.wait([ref], timeout=0.5)[0]:
                    if self.stop.is_set():
                        ray.cancel(ref)  # close() kills the actors too
                        self.idle.put(actor)
                        raise Interrupted(f"stopped during shard {index}")
                record_json, node, seconds = ray.get(ref)
            except (RayActorError, ActorUnavailableError) as e:
                # The worker died mid-shard: Ray restarts it; what it wrote is not recorded, and
                # the shard goes to the next free worker.
                threading.Thread(target=self._revive, args=(actor,), daemon=True).start()
                reason = str(e).strip().splitlines()[0][:160]
                if attempt == ATTEMPTS:
                    raise SourceError(f"shard {index}: its worker died {ATTEMPTS} times ({reason})") from None
                self.say(f"shard {index}: its worker died ({reason}); making it again")
                self.redone += 1
                continue
            self.idle.put(actor)
            self.wall_seconds.append(time.perf_counter() - sent)
            self.task_seconds.append(seconds)
            record = mf.ShardRecord.model_validate_json(record_json).model_copy(update={"made_on": node})
            self.placed[index] = node
            self._advance(record.requested, record.count, record.drawn)
            with self._bar_lock:
                self._bar.set_postfix(shards=len(self.placed), refresh=False)
            return record
        raise AssertionError("unreachable")

    def run(self, shards: Optional[list[int]] = None):
        result = super().run(shards)
        if self.placed:
            per_node = {}
            for node in self.placed.values():
                per_node[node[:12]] = per_node.get(node[:12], 0) + 1
            overhead = sorted(w - t for w, t in zip(self.wall_seconds, self.task_seconds))
            print(
                f"ray: shards per node {per_node}; {self.redone} sent again after a worker died; "
                f"Ray's overhead per shard (driver's wait - time in the worker) median "
                f"{overhead[len(overhead) // 2] * 1000:.1f} ms",
                file=sys.stderr,
            )
        return result

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        if self.started_ray:
            ray.shutdown()
