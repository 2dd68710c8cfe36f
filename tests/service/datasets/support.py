"""Helpers the dataset tests share: the generate command run in process, and what it wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.__main__ import main


def run_generate(capsys, *args) -> tuple[int, str]:
    """Run the command in process; returns (exit code, what it printed: stdout then stderr)."""
    code = main(["generate", "--quiet", *map(str, args)])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def local(models: Path, name: str = "tiny-digits") -> list[str]:
    return ["--model-dir", str(models / name), "--threads", "1"]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def dataset(folder: Path) -> tuple[np.ndarray, list]:
    """All rows in shard order, and the manifest's shard records without timestamps."""
    m = manifest(folder)
    rows = [np.load(folder / s["data"]["file"], allow_pickle=False) for s in m["shards"]]
    return np.concatenate(rows), m["shards"]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("shard-")}


def run_task(http: httpx.Client, body: dict) -> tuple[str, httpx.Response]:
    """Submit, wait for the end, and fetch the result: BentoML's task routes over HTTP (the Python
    client's .submit() is broken in 1.4.40)."""
    submitted = http.post("/generate_dataset/submit", json=body)
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["task_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = http.get("/generate_dataset/status", params={"task_id": task_id}).json()["status"]
        if status != "in_progress":
            return status, http.get("/generate_dataset/get", params={"task_id": task_id})
        time.sleep(0.2)
    pytest.fail(f"task {task_id} still running after 60 s")
