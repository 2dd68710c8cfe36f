"""The server's dataset-job slots, shared by all its workers: lock files under GANSERVE_OUTPUT_DIR.

A job holds an exclusive `flock` on one of `.jobs/slot-0.lock` .. `slot-<GANSERVE_DATASET_JOBS - 1>.lock`
while it runs, and one on `.jobs/dataset-<name>.lock` for its dataset. The workers of one server
are separate processes (GANSERVE_WORKERS), so a count in memory limited each worker, not the
server; the kernel's locks are seen by all of them. They are also crash-safe: the kernel drops a
process's flocks when it dies, so a worker killed mid-job leaves no slot taken. flock locks
belong to an open file, not to a process, so two threads of one worker exclude each other too.

The lock files stay (a few bytes each, one per dataset name ever written): unlinking a lock file
while another process may have it open would let two holders lock two different files. A slot's
holder writes its dataset's name into the file, so a refusal can say which jobs run. On a network
filesystem flock must reach across machines (Linux's NFS client emulates it with NFS locks);
servers that share one output folder share its slots.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from service.core.problems import RequestError

JOBS_DIR = ".jobs"


def jobs_dir(output_dir: Path) -> Path:
    return output_dir / JOBS_DIR


def _lock(path: Path) -> Optional[int]:
    """An exclusive flock on `path` (made if missing): its file descriptor, or None when another
    open file holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)  # closing alone would release it too: the unlock says so


@dataclass
class Held:
    """A job's slot and its dataset's lock, until release()."""

    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            _unlock(fd)


def take(output_dir: Path, name: str, max_jobs: int, task_id: Optional[str] = None, describe: bool = True) -> Held:
    """The lock of dataset `name` and a free slot, or a 409 naming what is running: the same
    refusals, and the same words, as when the limit was counted per worker."""
    folder = jobs_dir(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    held = Held()
    try:
        fd = _lock(folder / f"dataset-{name}.lock")  # names are [a-z0-9_-]: safe in a file name
        if fd is None:
            raise RequestError("name", f"a job is already writing dataset {name!r}", 409)
        held.fds.append(fd)
        taken = []  # the datasets of the slots held by other jobs
        for i in range(max_jobs):
            path = folder / f"slot-{i}.lock"
            fd = _lock(path)
            if fd is None:
                taken.append(_holder(path))
                continue
            held.fds.append(fd)
            if describe:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"name": name, "task_id": task_id, "pid": os.getpid()}).encode(), 0)
            return held
        raise RequestError(
            "name",
            f"this server already runs {len(taken)} dataset job(s) "
            f"({', '.join(sorted(taken))}), its limit (GANSERVE_DATASET_JOBS); "
            "submit again when one has ended, or cancel one",
            409,
        )
    except BaseException:
        held.release()
        raise


def _holder(path: Path) -> str:
    """The dataset a held slot's job writes, as its holder wrote it."""
    try:
        return str(json.loads(path.read_text())["name"])
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ):  # a submit's check holds it (nothing written), or it is being written
        return "?"


def check(output_dir: Path, name: str, max_jobs: int) -> None:
    """409 unless a job for `name` could start now. Only now: another submit may take the slot
    a moment later, so the job takes it again as it starts (and fails with the same 409)."""
    take(output_dir, name, max_jobs, describe=False).release()
