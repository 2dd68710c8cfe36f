"""The service's own Prometheus metrics, exported next to BentoML's on /metrics.

Created on first use, not at import: BentoML's workers set PROMETHEUS_MULTIPROC_DIR after the
service module is imported, and a metric made before that would be invisible to /metrics.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_samples = None


def samples_served():
    """Counter `ganserve_samples_served_total{model=...}`: samples returned by /sample and /interpolate."""
    global _samples
    with _lock:
        if _samples is None:
            import prometheus_client

            _samples = prometheus_client.Counter(
                "ganserve_samples_served", "Samples returned to callers, per model", ["model"]
            )
        return _samples


def count_samples(model: str, n: int) -> None:
    if n:
        samples_served().labels(model=model).inc(n)
