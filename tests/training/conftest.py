"""Fixtures of tests/training: the tutorial-style GANs packed once per session (packed.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # packed.py and tutorial_gans.py, beside this file


@pytest.fixture(scope="session")
def packed(tmp_path_factory):
    """Packed tutorial models (`tut-dcgan`, `tut-cgan`, `tut-gonly`) in one models dir."""
    import packed as pk

    return pk.build(tmp_path_factory.mktemp("packed"))
