"""`python -m service generate --ray ADDRESS`: shards made by Ray actors on a real two-node Ray
cluster started here on loopback only (ray.cluster_utils.Cluster, 1 CPU per node: see
../shared/STACK.md), the driver a real subprocess. The shards must equal, byte for byte, those of
the local path; a worker SIGKILLed mid-run must cost only the shard it was making."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from service.__main__ import main

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # nodes at 127.0.0.1, not the interface address
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        c.add_node(num_cpus=1)
        yield c
    finally:
        c.shutdown()


def shard_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("shard-")}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def spec(models: Path, samples: int, shard: int, block: int) -> list[str]:
    return [
        "--model-dir",
        str(models / "tiny-digits"),
        "--samples",
        str(samples),
        "--shard-size",
        str(shard),
        "--block-size",
        str(block),
        "--seed",
        "11",
        "--realness",
    ]


def driver(address: str, args: list[str], out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "service", "generate", "--quiet", "--ray", address, *args, "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def local_reference(args: list[str], out: Path) -> None:
    assert main(["generate", "--quiet", *args, "--threads", "1", "--out", str(out)]) == 0


def test_ray_needs_a_model_folder(tmp_path, capsys):
    code = main(
        ["generate", "--quiet", "--url", "http://127.0.0.1:9", "--ray", "--samples", "10", "--out", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--ray: runs the engine on the cluster's workers from a model folder" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_shards_run_on_both_nodes_and_equal_the_local_path(cluster, tiny_models_dir, tmp_path):
    args = spec(tiny_models_dir, 400, 50, 16)
    out = tmp_path / "ray"
    proc = driver(cluster.address, args, out)
    text = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, text
    assert text.count("ray: worker") == 2 and "loaded tiny-digits on CPUExecutionProvider" in text
    m = manifest(out)
    assert m["totals"]["complete"] == 8
    nodes = {node.node_id for node in cluster.list_all_nodes()}
    made_on = {s["made_on"] for s in m["shards"]}
    assert made_on == nodes and len(nodes) == 2  # placed on both nodes, and recorded
    local_reference(args, tmp_path / "local")
    assert shard_files(out) == shard_files(tmp_path / "local")
    strip = lambda shards: [{k: v for k, v in s.items() if k != "made_on"} for s in shards]
    assert strip(m["shards"]) == strip(manifest(tmp_path / "local")["shards"])
    # A rerun verifies and skips every shard, exactly as the local path does.
    proc = driver(cluster.address, args, out)
    text = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0 and "made 0 shard(s), repaired 0, skipped 8 complete" in text, text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_worker_killed_mid_run_costs_only_its_shard(cluster, tiny_models_dir, tmp_path):
    # Blocks of 2: each shard is a few hundred graph runs, so a worker is caught in the middle of one.
    args = spec(tiny_models_dir, 4000, 400, 2)
    out = tmp_path / "ray"
    proc = driver(cluster.address, args, out)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 400
    while not (
        sum("ray: worker" in line for line in lines) == 2
        and (out / "manifest.json").exists()
        and manifest(out)["totals"]["complete"] >= 1
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            reader.join(5)
            pytest.fail("the run ended or stalled before a worker could be killed:\n" + "".join(lines)[-3000:])
        time.sleep(0.05)
    victim = int(next(line for line in lines if line.startswith("ray: worker 1")).split("(pid ")[1].split(")")[0])
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, "".join(lines)
    reader.join(10)
    text = "".join(lines)
    assert manifest(out)["totals"]["complete"] == 10
    assert "its worker died" in text and "making it again" in text, text
    local_reference(args, tmp_path / "local")
    assert shard_files(out) == shard_files(tmp_path / "local")
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]  # the dead worker's temporary went too
