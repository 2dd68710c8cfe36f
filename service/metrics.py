"""The service's own Prometheus metrics, exported next to BentoML's on /metrics.

Created on first use, not at import: BentoML's workers set PROMETHEUS_MULTIPROC_DIR after the
service module is imported, and a metric made before that would be invisible to /metrics.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_samples = None
_per_model = {}  # model name -> its labelled counter: labels() costs more than inc() on every request


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
        counter = _per_model.get(model)
        if counter is None:  # prometheus_client hands every caller the same child for a label value
            counter = _per_model.setdefault(model, samples_served().labels(model=model))
        counter.inc(n)
