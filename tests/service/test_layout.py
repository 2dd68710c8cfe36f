"""Workers and graph threads chosen for the host (settings.Settings.layout)."""

from __future__ import annotations

import pytest

from service import settings as settings_module
from service.settings import WORKER_MEMORY_GOAL, load_settings


@pytest.fixture
def host(monkeypatch):
    """Pretend the host has `cores` cores and `memory` bytes available, and no GPU device."""

    def make(cores: int, memory: int):
        monkeypatch.setattr(settings_module, "cpu_count", lambda: cores)
        monkeypatch.setattr(settings_module, "available_memory", lambda: memory)
        for key in ("GANSERVE_WORKERS", "GANSERVE_DEVICE"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("GANSERVE_DEVICE", "cpu")
        return load_settings()

    return make


def test_one_worker_per_core_with_twice_its_share_of_graph_threads(host):
    workers, threads, why = host(cores=4, memory=64 * 2**30).layout()
    assert (workers, threads) == (4, 2)
    assert "4 worker(s) for 4 core(s)" in why


def test_memory_caps_the_workers(host):
    workers, threads, why = host(cores=8, memory=3 * WORKER_MEMORY_GOAL + 1).layout()
    assert (workers, threads) == (3, 4)  # 8 // 3 = 2 cores each, twice that in threads
    assert "within 500 MiB" in why


def test_at_least_one_worker_on_a_tiny_host(host):
    assert host(cores=1, memory=10 * 2**20).layout()[:2] == (1, 1)


def test_the_setting_pins_it(host, monkeypatch):
    host(cores=2, memory=64 * 2**30)
    monkeypatch.setenv("GANSERVE_WORKERS", "1")
    assert load_settings().layout() == (1, 2, "GANSERVE_WORKERS=1")
    monkeypatch.setenv("GANSERVE_GRAPH_THREADS", "3")  # graph threads pinned too
    assert load_settings().layout() == (1, 3, "GANSERVE_WORKERS=1; GANSERVE_GRAPH_THREADS=3")
    monkeypatch.delenv("GANSERVE_WORKERS")
    workers, threads, why = load_settings().layout()
    assert (workers, threads) == (2, 3) and why.endswith("; GANSERVE_GRAPH_THREADS=3")


def test_available_memory_is_a_positive_number():
    assert settings_module.available_memory() > 0
