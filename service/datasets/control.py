"""The server's dataset jobs: at most GANSERVE_DATASET_JOBS at once, and a cancel that works.

BentoML 1.4.40's `PUT /generate_dataset/cancel` marks the task cancelled and answers "task
cancellation is not supported in local development server": under `bentoml serve` (and so in the
image) the job ran on, and only a restart stopped it. ganserve serves that route itself
(routes.py): the job stops after its current block (no partial shard; a rerun resumes it), and
BentoML's status says `canceled`, also once the job has wound down.

A cancel may reach another worker than the one running the job (GANSERVE_WORKERS > 1): it leaves a
flag file, `<GANSERVE_OUTPUT_DIR>/.cancel/<task_id>`, that the job's worker looks for every
CANCEL_POLL_S. The job limit, and one job per dataset name, hold across the server's workers:
a job holds a slot (slots.py: lock files under `<GANSERVE_OUTPUT_DIR>/.jobs`) while it runs.
The registry here only finds this worker's jobs for a cancel.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from service.datasets import slots

log = logging.getLogger("ganserve.datasets")
CANCEL_DIR = ".cancel"
CANCEL_POLL_S = 0.5


@dataclass
class Running:
    name: str
    task_id: Optional[str]
    flag: Optional[Path]  # the cancel flag file another worker may leave for this job
    job: object = None  # datasets.job.Job, once made
    held: Optional[slots.Held] = None  # its slot and its dataset's lock
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        with _lock:
            self.cancelled = True
            job = self.job
        if job is not None:
            job.cancel()

    def attach(self, job) -> None:
        """The job of this entry; cancelled at once when a cancel came first."""
        with _lock:
            self.job = job
            cancelled = self.cancelled
        if cancelled:
            job.cancel()


_lock = threading.Lock()
_running: dict[str, Running] = {}  # dataset name -> its job in this worker (for cancel)


def cancel_flag(output_dir: Path, task_id: str) -> Path:
    return output_dir / CANCEL_DIR / task_id


def check_room(name: str, max_jobs: int, output_dir: Path) -> None:
    """409 when `name` is being written, or the server (any of its workers) already runs
    `max_jobs` jobs."""
    slots.check(output_dir, name, max_jobs)


@contextlib.contextmanager
def running(name: str, task_id: Optional[str], output_dir: Path, max_jobs: int) -> Iterator[Running]:
    """Holds a slot of the server's for the job's run (409 if there is none, or `name` is being
    written), registers it for a cancel, and watches for its cancel flag."""
    flag = cancel_flag(output_dir, task_id) if task_id else None
    entry = Running(name, task_id, flag)
    entry.held = slots.take(output_dir, name, max_jobs, task_id)
    try:
        with _lock:
            _running[name] = entry
        if flag is not None:
            if flag.exists():  # cancelled before it started
                entry.cancelled = True
            threading.Thread(target=_watch, args=(entry,), name=f"cancel-watch-{name}", daemon=True).start()
        yield entry
    finally:
        entry.done.set()
        with _lock:
            _running.pop(name, None)
        if flag is not None:
            flag.unlink(missing_ok=True)
        entry.held.release()  # last: the next job may start once this one has let go of everything


def _watch(entry: Running) -> None:
    while not entry.done.wait(CANCEL_POLL_S):
        if entry.flag.exists():
            log.warning("dataset %s: cancelled (task %s)", entry.name, entry.task_id)
            entry.cancel()
            return


def find(task_id: str) -> Optional[Running]:
    with _lock:
        return next((r for r in _running.values() if r.task_id == task_id), None)


def running_names() -> list[str]:
    with _lock:
        return sorted(_running)
