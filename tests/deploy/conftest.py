"""Fixtures for the deployment tests: the real tools that check the deploy files.

Debian's docker-compose (1.29) validates docker-compose.yml offline; nginx runs the proxy config.
`.ci/run` installs both, so in CI nothing here skips; on a developer machine without them the
tests that need them skip and say which package to install.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import find_tool

REPO = Path(__file__).resolve().parents[2]


def tool_or_skip(name: str) -> str:
    """The tool's path; a clear skip where it is absent (CI installs it, so CI never skips)."""
    tool = find_tool(name)
    if tool is None:
        pytest.skip(f"{name} is not installed (Debian package {name}; .ci/run installs it)")
    return tool


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return tool_or_skip("docker-compose")


@pytest.fixture(scope="session")
def nginx() -> str:
    return tool_or_skip("nginx")
