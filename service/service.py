"""The BentoML service: `bentoml serve service.service:GanServe` (or `python -m service serve`).

POST /sample and /interpolate are BentoML APIs with typed, bounded bodies (schemas.py); over HTTP,
both are served by the mounted Starlette app (routes.py, dispatch.py), as are GET /models, POST
/score and GET /docs.json (BentoML's document completed by openapi.py); middleware.py guards them
all.
Models load and warm up in __init__, so /readyz turns ready only once every model can serve.
"""

from __future__ import annotations

import gc
import logging

import bentoml
from pydantic import ValidationError

from . import handlers
from .datasets import task as dataset_task
from .engine import Engine
from .errors import answering_errors
from .dispatch import RoutesFirst
from .middleware import GuardMiddleware
from .routes import build_app
from .schemas import InterpolateRequest, SampleRequest
from .settings import get_settings
from .timeout import install as install_request_timeout
from .ui.app import build_app as build_ui

SETTINGS = get_settings()
# Workers and graph threads for this host (settings.Settings.layout), decided once per process.
LAYOUT = SETTINGS.layout()
ROUTES = build_app()
log = logging.getLogger("ganserve.service")


class _NoTracebackForBadInput(logging.Filter):
    """BentoML logs every request that fails validation with a full traceback at ERROR level.
    Those are answered 400 (the client's mistake, said in the answer): keep server logs for
    server faults."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


logging.getLogger("bentoml._internal.server.http_app").addFilter(_NoTracebackForBadInput())


def _warn_if_exporter_unused() -> None:
    """An operator who configured a tracing exporter in BentoML's config, with GANSERVE_TRACING
    left off, would otherwise get no spans and no word why."""
    if SETTINGS.tracing:
        return
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        exporter = BentoMLContainer.tracing.exporter_type.get()
    except Exception:  # BentoML's internals moved (pinned 1.4.40): no warning rather than no server
        return
    if exporter:
        log.warning("BentoML's config names a tracing exporter (%s), but GANSERVE_TRACING is off, so no "
                    "request is traced: set GANSERVE_TRACING=true to export spans", exporter)
install_request_timeout()  # traffic.timeout below, without BentoML's timer per request kept alive


@bentoml.service(
    name="ganserve",
    workers=LAYOUT[0],
    threads=SETTINGS.threads,
    traffic={"timeout": 120},
    logging={"access": {"enabled": SETTINGS.access_log}},
    # Off: every URL is excluded from BentoML's OpenTelemetry middleware, which then passes
    # requests straight through. On: BentoML's tracing config applies unchanged.
    **({} if SETTINGS.tracing else {"tracing": {"excluded_urls": ".*"}}),
)
@bentoml.asgi_app(ROUTES, path="/")
class GanServe:
    def __init__(self) -> None:
        # Each worker's graph runs get an equal share of the cores: more would oversubscribe them.
        workers, threads, why = LAYOUT
        self.engine = Engine(SETTINGS.models_dir, SETTINGS.device, SETTINGS.default_model, threads,
                             micro_batching=SETTINGS.micro_batching, run_threads=SETTINGS.threads,
                             backend=SETTINGS.backend)
        self.engine.layout_note = f"{why}; {threads} graph thread(s) per worker"
        log.info("layout: %s", self.engine.layout_note)
        ROUTES.state.engine = self.engine
        log.info("serving %s (default %s) on %s", sorted(self.engine.models), self.engine.default_model,
                 self.engine.provider_note)
        _warn_if_exporter_unused()
        # Full garbage collections stalled requests for 100-400 ms (p99 ~200 ms at p50 ~3 ms): they
        # walked the ~100k objects start-up made, and every request of the last 120 s (BentoML's
        # timeout middleware kept them; timeout.py replaces it). Freezing what start-up made and
        # collecting the young generation less often took p99 to 6-8 ms (docs/PERFORMANCE.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)

    def __is_ready__(self) -> bool:
        return bool(self.engine.models)

    @bentoml.api(input_spec=SampleRequest)
    @answering_errors
    def sample(self, **fields):
        """n samples from a model: by seed (returned) or explicit latents; json, npy or a png grid.
        (Over HTTP, routes.sample answers this route with the same handlers.)"""
        return handlers.sample(self.engine, SampleRequest.model_construct(**fields), SETTINGS.max_draws_factor)

    @bentoml.api(input_spec=InterpolateRequest)
    @answering_errors
    def interpolate(self, **fields):
        """`steps` samples along a slerp or lerp path between two seeds or two latents.
        (Over HTTP, routes.interpolate answers this route with the same handler.)"""
        return handlers.interpolate(self.engine, InterpolateRequest.model_construct(**fields))

    @bentoml.task(input_spec=dataset_task.DatasetRequest)
    @answering_errors
    def generate_dataset(self, **fields):
        """A job: write a sharded dataset into GANSERVE_OUTPUT_DIR/<name>, answer its manifest
        (POST /generate_dataset/submit, then GET /generate_dataset/status and /get)."""
        return dataset_task.generate(self.engine, SETTINGS, dataset_task.DatasetRequest.model_construct(**fields))


if SETTINGS.ui:  # the playground (service/ui/): a page that calls the routes above, behind the same guard
    GanServe.mount_asgi_app(build_ui(), path="/ui", name="ui")
GanServe.add_asgi_middleware(
    GuardMiddleware,
    max_body_bytes=SETTINGS.max_body_bytes,
    api_token=SETTINGS.api_token.get_secret_value() if SETTINGS.token_required else None,
)
GanServe.add_asgi_middleware(RoutesFirst, routes=ROUTES)  # inside the guard: token and body limit apply
ROUTES.state.bentoml_spec = lambda: GanServe.openapi_spec.asdict()  # routes.docs completes it
