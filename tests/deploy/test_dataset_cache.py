"""A dataset made twice through the scale-out proxy: the second time nginx's cache answers every
block, so no request reaches the replica, and the files are the first run's byte for byte.

The replica and nginx are started as tests/deploy/test_proxy.py starts them (its Replica, and
tests/servers.py start_nginx: the compose proxy's template and script); the dataset command runs
as a subprocess, the way a user runs it (and so that this process never imports the service's
request schemas before tests/service sets its settings). bench/dataset_cache.py measures the same
on the shipped mnist model.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_proxy import READY_TIMEOUT_S, TOKEN, UPSTREAMS_LOG, Replica
from tests.servers import REPO, server_env, start_nginx

pytestmark = pytest.mark.slow
# 2 shards of 30 in blocks of 8: 4 blocks each, the last of 6.
SPEC = ["--model", "tiny-digits", "--samples", "60", "--shard-size", "30", "--block-size", "8", "--seed", "5"]
BLOCKS = 8


def generate(url: str, out: Path) -> str:
    """`python -m service generate --url url` as a user runs it; its output, checked for success."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "generate",
            "--quiet",
            "--url",
            url,
            "--token",
            TOKEN,
            "--out",
            str(out),
            *SPEC,
        ],
        cwd=REPO,
        env=server_env({}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))}


def test_a_dataset_asked_again_through_the_proxy_comes_from_its_cache(
    nginx: str, tiny_models_dir: Path, tmp_path: Path
):
    # Replica 0 of test_proxy.py: it requires the token and says the cache keys on it.
    replica = Replica(0, tiny_models_dir, tmp_path, tmp_path / "datasets")
    root = tmp_path / "nginx"
    root.mkdir()
    proxy = None
    try:
        replica.wait_ready(READY_TIMEOUT_S)
        proxy, url = start_nginx(nginx, root, [f"127.0.0.1:{replica.port}"], UPSTREAMS_LOG)
        counts = [replica.samples_served()]
        generate(url, tmp_path / "first")
        counts.append(replica.samples_served())
        generate(url, tmp_path / "second")
        counts.append(replica.samples_served())
    finally:
        if proxy is not None:
            proxy.stop()
        replica.stop()
    assert counts[1] - counts[0] == BLOCKS  # the first run: every block computed by the replica
    assert counts[2] - counts[1] == 0  # the second: every block from nginx's cache
    first, second = digests(tmp_path / "first"), digests(tmp_path / "second")
    assert len(first) == 2 and first == second
    # Every block went by GET and was a miss, then a hit (the access log names the method).
    methods = [line.split(" ")[0] for line in (root / "access.log").read_text().splitlines() if " /sample " in line]
    assert methods == ["GET"] * (2 * BLOCKS), methods
