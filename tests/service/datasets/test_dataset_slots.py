"""The server's dataset-job slots (service/datasets/slots.py): GANSERVE_DATASET_JOBS jobs at once
and one per dataset name, across processes (a server's workers), freed when a holder ends or dies.
The two-worker server itself is in test_dataset_limits.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.core.problems import RequestError
from service.datasets import control, slots

REPO = Path(__file__).resolve().parents[3]


def _refusal(fn, *args) -> str:
    with pytest.raises(RequestError) as refused:
        fn(*args)
    assert refused.value.status == 409 and refused.value.field == "name"
    return refused.value.problem


def test_a_job_past_the_limit_is_refused_naming_the_running_ones_until_one_ends(tmp_path):
    first = slots.take(tmp_path, "first", 2)
    second = slots.take(tmp_path, "second", 2)
    problem = _refusal(slots.take, tmp_path, "third", 2)
    assert problem.startswith(
        "this server already runs 2 dataset job(s) (first, second), its limit (GANSERVE_DATASET_JOBS)"
    ), problem
    assert _refusal(slots.check, tmp_path, "third", 2) == problem  # the submit's check says the same
    first.release()
    slots.check(tmp_path, "third", 2)  # holds nothing afterwards ...
    third = slots.take(tmp_path, "third", 2)  # ... so the job takes the slot
    assert _refusal(slots.take, tmp_path, "fourth", 2).startswith(
        "this server already runs 2 dataset job(s) (second, third)"
    )
    second.release()
    third.release()
    third.release()  # twice is harmless


def test_one_job_per_dataset_name_whatever_the_limit(tmp_path):
    held = slots.take(tmp_path, "digits", 8)
    assert _refusal(slots.take, tmp_path, "digits", 8) == "a job is already writing dataset 'digits'"
    other = slots.take(tmp_path, "other", 8)
    held.release()
    slots.take(tmp_path, "digits", 8).release()
    other.release()


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from service.datasets import slots
    slots.take(Path(sys.argv[1]), "elsewhere", 1, "task-9")
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_slot_held_by_another_process_counts_and_a_killed_holder_frees_it(tmp_path):
    """Another process: another worker of the server. SIGKILL: a worker the OOM killer took."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        problem = _refusal(control.check_room, "mine", 1, tmp_path)
        assert problem.startswith("this server already runs 1 dataset job(s) (elsewhere)"), problem
        with pytest.raises(RequestError):
            with control.running("mine", "task-1", tmp_path, 1):
                pytest.fail("ran past the server's limit")
        assert control.find("task-1") is None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    with control.running("mine", "task-1", tmp_path, 1) as entry:  # the kernel dropped the dead holder's lock
        assert control.find("task-1") is entry
        assert _refusal(control.check_room, "more", 1, tmp_path).startswith(
            "this server already runs 1 dataset job(s) (mine)"
        )
    assert control.find("task-1") is None
    control.check_room("more", 1, tmp_path)  # free again once the job has ended
