"""Fixtures for the deployment tests: the real tools that check the deploy files.

Debian's docker-compose (1.29) validates docker-compose.yml offline; nginx runs the proxy config.
`.ci/run` installs both, so in CI nothing here skips; on a developer machine without them the
tests that need them skip and say which package to install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def find_tool(name: str) -> str | None:
    # Debian puts nginx in /usr/sbin, which is not on a non-root user's PATH.
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return shutil.which(name, path=path)


@pytest.fixture(scope="session")
def docker_compose() -> str:
    tool = find_tool("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    return tool


@pytest.fixture(scope="session")
def nginx() -> str:
    tool = find_tool("nginx")
    if tool is None:
        pytest.skip("nginx is not installed (Debian package nginx; .ci/run installs it)")
    return tool
