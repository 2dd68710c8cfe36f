"""glibc's allocator settings (service/runtime/memory.py) reach the server both ways it is run: the image
(bentofile.yaml's envs) and `python -m service serve` (`make serve`); and the idle trim runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from service.commands.serve import server_command
from service.runtime.memory import ALLOCATOR_ENV, Trimmer

REPO = Path(__file__).resolve().parents[2]


def test_the_image_sets_the_same_allocator_environment():
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    envs = {e["name"]: str(e["value"]) for e in bentofile["envs"]}
    assert {k: envs.get(k) for k in ALLOCATOR_ENV} == ALLOCATOR_ENV


def test_python_m_service_serve_sets_it_unless_the_caller_did(monkeypatch):
    args = argparse.Namespace(port=3000, host="127.0.0.1", models_dir=None, device=None, workers=None)
    for key in ALLOCATOR_ENV:
        monkeypatch.delenv(key, raising=False)
    _, env = server_command(args)
    assert {k: env[k] for k in ALLOCATOR_ENV} == ALLOCATOR_ENV
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    _, env = server_command(args)
    assert env["MALLOC_ARENA_MAX"] == "4"


def test_the_trimmer_trims_once_after_a_quiet_spell_and_not_while_busy():
    trimmer = Trimmer(after_s=0.2)
    trimmer.idle()  # nothing large happened: nothing to trim
    time.sleep(0.4)
    assert trimmer.trims == 0
    trimmer.busy()
    trimmer.idle()
    trimmer.busy()  # busy again before the quiet spell ends: no trim
    time.sleep(0.4)
    assert trimmer.trims == 0
    trimmer.idle()
    deadline = time.monotonic() + 3
    while trimmer.trims == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert trimmer.trims == 1
