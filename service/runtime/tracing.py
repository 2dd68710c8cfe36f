"""OpenTelemetry spans for a request's phases, beside the one BentoML opens per request.

With GANSERVE_TRACING on, service.py hands BentoML's tracer provider (its `tracing` config:
exporter, OTLP endpoint, sample rate) to `enable`, and each request that runs the graphs gets
child spans of its server span:

    admission wait   until admission control let the request's charge in (runtime/admission.py)
    batcher wait     queued in a micro-batcher until its group's run began (runtime/batching.py)
    graph run        the onnxruntime run that served it (shared with its group: rows, requests)
    encode           the answer's bytes (json, npy, png) made from the samples
    send             the body handed to the server, until its last byte went

each with `ganserve.model`, `ganserve.version`, `ganserve.n` and `ganserve.format`, also set on the
server span (`describe`). The batcher's spans are recorded after the fact from timestamps, so the
shared run itself carries no tracing code.

Off (the default), `phase` hands back one shared do-nothing context and nothing else runs: the
cost is a flag test per phase (docs/PERFORMANCE.md#finding-phase-spans).
"""

from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from typing import Any, Optional

_tracer: Any = None  # an opentelemetry Tracer once enabled
_NOTHING = contextlib.nullcontext()
_attributes: ContextVar[Optional[dict]] = ContextVar("ganserve_span_attributes", default=None)


def enable(tracer_provider) -> None:
    """Trace the phases with this provider's tracer (BentoML's, so that they join its spans)."""
    global _tracer
    _tracer = tracer_provider.get_tracer("ganserve")


def on() -> bool:
    return _tracer is not None


def describe(model: str, version: str, n: int, fmt: str) -> None:
    """What the current request asks for, on its server span and on its phases to come."""
    if _tracer is None:
        return
    from opentelemetry import trace

    attributes = {"ganserve.model": model, "ganserve.version": version, "ganserve.n": n, "ganserve.format": fmt}
    _attributes.set(attributes)
    trace.get_current_span().set_attributes(attributes)


def phase(name: str, **attributes):
    """A span around a phase of the current request (a context manager), or nothing when off."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(name, attributes={**(_attributes.get() or {}), **attributes})


def now() -> int:
    """A timestamp for `record` (wall-clock nanoseconds, as OpenTelemetry takes them)."""
    return time.time_ns()


def record(name: str, start_ns: int, end_ns: int, **attributes) -> None:
    """A finished phase of the current request, from timestamps taken while it ran."""
    if _tracer is None:
        return
    span = _tracer.start_span(name, start_time=start_ns, attributes={**(_attributes.get() or {}), **attributes})
    span.end(end_time=end_ns)
