"""deploy/k8s rendered as a cluster would receive it: `kubectl kustomize` of one of its
kustomizations, shared by test_k8s.py (built-in kinds) and test_crds.py (custom kinds)."""

from __future__ import annotations

import functools
import subprocess

import yaml

from tests.deploy.conftest import REPO, tool_or_skip

K8S = REPO / "deploy" / "k8s"


@functools.cache
def _kustomized(target: str) -> str:
    kubectl = tool_or_skip("kubectl")
    done = subprocess.run([kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{target}: {done.stderr}"
    return done.stdout


def render(target: str) -> list[dict]:
    """The documents `kubectl kustomize deploy/k8s/<target>` writes (empty ones dropped); kubectl
    runs once per target and session, and each call parses its output afresh, so a test may change
    what it gets. Skips the test where kubectl is not installed."""
    return [d for d in yaml.safe_load_all(_kustomized(target)) if d]
