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


# Admission control (admission.py): what each worker holds and queues, summed over live workers.
_admission = None


def _admission_metrics():
    global _admission
    with _lock:
        if _admission is None:
            import prometheus_client

            _admission = (
                prometheus_client.Gauge(
                    "ganserve_inflight_requests", "Requests admitted and not yet answered", multiprocess_mode="livesum"
                ),
                prometheus_client.Gauge(
                    "ganserve_inflight_bytes",
                    "Estimated peak bytes of the admitted requests",
                    multiprocess_mode="livesum",
                ),
                prometheus_client.Gauge(
                    "ganserve_queued_requests", "Requests waiting for admission", multiprocess_mode="livesum"
                ),
                prometheus_client.Counter(
                    "ganserve_refused_requests", "Requests refused with 503 by admission control"
                ),
            )
        return _admission


def admission_state(in_flight: int, in_flight_bytes: int, queued: int) -> None:
    requests, size, waiting, _ = _admission_metrics()
    requests.set(in_flight)
    size.set(in_flight_bytes)
    waiting.set(queued)


def count_refusal() -> None:
    _admission_metrics()[3].inc()


_cancelled = None


def count_cancelled() -> None:
    """Counter `ganserve_cancelled_requests_total`: requests whose client left before the answer
    (http/disconnect.py stopped their work)."""
    global _cancelled
    with _lock:
        if _cancelled is None:
            import prometheus_client

            _cancelled = prometheus_client.Counter(
                "ganserve_cancelled_requests", "Requests stopped because their client disconnected"
            )
    _cancelled.inc()
