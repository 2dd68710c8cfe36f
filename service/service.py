"""The BentoML service: `bentoml serve service.service:GanServe` (or `python -m service serve`).

POST /sample and /interpolate are BentoML APIs with typed, bounded bodies (core/schemas.py); over HTTP,
both are served by the mounted Starlette app (http/routes.py, http/dispatch.py), as are GET /models, POST
/score and GET /docs.json (BentoML's document completed by http/openapi.py); http/middleware.py guards them
all.
Models load and warm up in __init__, so /readyz turns ready only once every model can serve.

/sample and /interpolate declare `bytes` as what they answer: the answer is JSON, .npy or PNG as
the request's `format` says, and BentoML's clients (bentoml.SyncHTTPClient, AsyncHTTPClient) pick
how to decode an answer from that declaration alone, not from the answer's content type. Declared
as bytes, every format reaches them as the bytes sent (JSON decoded as JSON broke on .npy and PNG).
"""

from __future__ import annotations

import gc
import logging

import bentoml
from pydantic import ValidationError

from service.core import requests
from service.core.schemas import InterpolateRequest, SampleRequest
from service.http import dataset_task, failfast, handlers
from service.http.dispatch import RoutesFirst
from service.http.errors import answering_errors
from service.http.middleware import GuardMiddleware
from service.http.routes import build_app
from service.http.timeout import install as install_request_timeout
from service.http.ui.app import build_app as build_ui
from service.runtime import admission, tracing
from service.runtime.engine import Engine
from service.runtime.registry import Registry
from service.settings import get_settings

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
        log.warning(
            "BentoML's config names a tracing exporter (%s), but GANSERVE_TRACING is off, so no "
            "request is traced: set GANSERVE_TRACING=true to export spans",
            exporter,
        )


def _task_id(ctx: bentoml.Context) -> str | None:
    """The running task's id: BentoML sets it on the request's state before it calls the task
    (its cancel route, datasets/routes.py, finds the job by it)."""
    try:
        return getattr(ctx.request.state, "task_id", None)
    except Exception:  # no request context (called in-process)
        return None


install_request_timeout()  # traffic.timeout below, without BentoML's timer per request kept alive
failfast.install_in_arbiter()  # under `bentoml serve`: a worker that cannot start stops the server


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
        try:
            self.engine = Engine(
                SETTINGS.models_dir,
                SETTINGS.device,
                SETTINGS.default_model,
                threads,
                micro_batching=SETTINGS.micro_batching,
                run_threads=SETTINGS.threads,
                backend=SETTINGS.backend,
                gather_s=SETTINGS.batch_gather_ms / 1000,
            )
        except Exception as e:  # a default model that cannot load, an unusable device: retrying cannot help
            failfast.worker_failed(f"{type(e).__name__}: {e}")
            raise
        self.engine.layout_note = f"{why}; {threads} graph thread(s) per worker"
        log.info("layout: %s", self.engine.layout_note)
        # Models that change while serving (GANSERVE_MODEL_CONTROL): a thread of this worker's own.
        self.registry = Registry(
            self.engine, SETTINGS.model_control, SETTINGS.poll_interval_s, SETTINGS.control_file, SETTINGS.default_model
        )
        self.registry.start()
        ROUTES.state.engine = self.engine
        ROUTES.state.registry = self.registry
        log.info(
            "serving %s (default %s) on %s; model control %s",
            sorted(self.engine.models),
            self.engine.default_model,
            self.engine.provider_note,
            SETTINGS.model_control,
        )
        _warn_if_exporter_unused()
        if SETTINGS.tracing:  # phase spans under BentoML's request spans, through its exporter
            from bentoml._internal.configuration.containers import BentoMLContainer

            tracing.enable(BentoMLContainer.tracer_provider.get())
        # Full garbage collections stalled requests: they walked the objects start-up made, and
        # every request of the last 120 s (BentoML's timeout middleware kept them; http/timeout.py
        # replaces it). Freezing what start-up made and collecting the young generation less often
        # removes those stalls (docs/PERFORMANCE.md#finding-gc-freeze).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)

    def __is_ready__(self) -> bool:
        return bool(self.engine.models)

    @bentoml.api(input_spec=SampleRequest)
    @answering_errors
    def sample(self, **fields) -> bytes:
        """n samples from a model: by seed (returned) or explicit latents; json, npy or a png grid.
        (Over HTTP, routes.sample answers this route with the same handlers.)"""
        req = SampleRequest.model_construct(**fields)
        cost = requests.sample_charge(self.engine.get(req.model), req, SETTINGS.max_draws_factor)
        with admission.get().admit_sync(cost):  # the same budget as the routes' (admission.py)
            return handlers.sample(self.engine, req, SETTINGS.max_draws_factor)

    @bentoml.api(input_spec=InterpolateRequest)
    @answering_errors
    def interpolate(self, **fields) -> bytes:
        """`steps` samples along a slerp or lerp path between two seeds or two latents.
        (Over HTTP, routes.interpolate answers this route with the same handler.)"""
        req = InterpolateRequest.model_construct(**fields)
        cost = requests.interpolate_charge(self.engine.get(req.model), req)
        with admission.get().admit_sync(cost):
            return handlers.interpolate(self.engine, req)

    @bentoml.task(input_spec=dataset_task.DatasetRequest)
    def generate_dataset(self, ctx: bentoml.Context, **fields):
        """A job: write a sharded dataset into GANSERVE_OUTPUT_DIR/<name>, answer its manifest
        (POST /generate_dataset/submit, then GET /generate_dataset/status and /get)."""
        response = answering_errors(dataset_task.generate)(
            self.engine, SETTINGS, dataset_task.DatasetRequest.model_construct(**fields), task_id=_task_id(ctx)
        )
        # With a context parameter BentoML answers the context's status, not the response's
        # (1.4.40): carry ours over, or a refused job would be recorded as completed.
        ctx.response.status_code = response.status_code
        return response


if SETTINGS.ui:  # the playground (service/http/ui/): a page that calls the routes above, behind the same guard
    GanServe.mount_asgi_app(build_ui(), path="/ui", name="ui")
GanServe.add_asgi_middleware(
    GuardMiddleware,
    max_body_bytes=SETTINGS.max_body_bytes,
    api_token=SETTINGS.api_token.get_secret_value() if SETTINGS.token_required else None,
)
GanServe.add_asgi_middleware(RoutesFirst, routes=ROUTES)  # inside the guard: token and body limit apply
ROUTES.state.bentoml_spec = lambda: GanServe.openapi_spec.asdict()  # routes.docs completes it
