"""The dataset task's routes that ganserve serves itself, ahead of BentoML's (dispatch.py):

- `POST /generate_dataset/submit`: checked first (task.plan: feature on, disk budget;
  control.check_room: the server's job limit), refused with its 403, 422 or 409 right there, so a client
  learns at once why and nothing is written; a submit that passes goes on, unchanged, to
  BentoML's task route (and the task checks everything again as it starts).
- `POST /generate_dataset` (the task run synchronously) and `/submit`: a form body (BentoML takes
  forms as well as JSON) that cannot be parsed, a multipart one without its boundary say, is a 400
  naming the body here; BentoML's own form parser would answer it with a 500.
- `PUT /generate_dataset/cancel?task_id=...`: BentoML's own answers "not supported in local
  development server" and lets the job run on. Here: the job stops after its current block
  (control.py), and BentoML's task store says `canceled` (it would say `failed` or `completed`
  once the job returned, so its `set_result` keeps a cancelled task's status).
"""

from __future__ import annotations

import logging
from typing import Optional

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.core.problems import RequestError
from service.datasets import control
from service.http import dataset_task as task
from service.http.context import engine_of
from service.http.errors import to_response
from service.http.middleware import replay_body
from service.settings import get_settings

log = logging.getLogger("ganserve.datasets")
CANCEL_PATH = "/generate_dataset/cancel"
# The refusals a submit gets at once (nothing is queued, nothing written): the feature is off, the
# dataset is over the disk budget, the dataset or the worker is busy. A bad field or an unknown
# model still fails the task, with its 400 or 404, as before these checks existed.
REFUSED_AT_SUBMIT = {403, 409, 422}
_cancelled_tasks: set[str] = set()  # in this worker: their final status stays `canceled`


class _HandOn:
    """Passes the request, body replayed, to the app behind ganserve's routes (BentoML's)."""

    def __init__(self, app, body: bytes):
        self.app, self.body = app, body

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, replay_body(self.body, receive), send)


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def _form_problem(request: Request, body: bytes) -> Optional[RequestError]:
    """A form body Starlette cannot parse, as a 400 naming the body (None for JSON and sound forms)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        return None
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    # A Request of its own over the body read already; after it, a disconnect: this check never
    # waits on the client's connection.
    try:
        form = await Request(request.scope, replay_body(body)).form(max_files=16, max_fields=64)
    except MultiPartException as e:
        return RequestError("body", f"malformed form ({e.message})")
    except HTTPException as e:
        return RequestError("body", f"malformed form ({e.detail})", e.status_code)
    if any(isinstance(v, UploadFile) for _, v in form.multi_items()):
        return RequestError("body", "the dataset task takes fields, not files")
    return None


async def _checked(request: Request) -> tuple[bytes, object, Optional[Response]]:
    """(body, BentoML's app to hand it on to, a refusal or None): the route is reachable and a
    form body parses."""
    body = await request.body()
    next_app = request.scope.get("ganserve.next_app")
    if next_app is None:
        return body, None, to_response(RequestError("server", "the task route is not available here", 503))
    problem = await _form_problem(request, body)
    return body, next_app, None if problem is None else to_response(problem)


async def run_now(request: Request) -> Response:
    """POST /generate_dataset: a malformed form refused here, anything else on to BentoML's route."""
    body, next_app, refusal = await _checked(request)
    return refusal if refusal is not None else _HandOn(next_app, body)


async def submit(request: Request) -> Response:
    body, next_app, refusal = await _checked(request)
    if refusal is not None:
        return refusal
    engine = engine_of(request, required=False)  # before the models load, BentoML's task answers
    try:
        req = task.DatasetRequest.model_validate_json(body)
    except ValidationError:
        return _HandOn(next_app, body)  # BentoML validates it as ever: the task fails with its 400
    try:
        if engine is not None:
            settings = get_settings()
            task.plan(engine, settings, req)
            control.check_room(req.name, settings.dataset_jobs, settings.output_dir)
    except RequestError as e:
        if e.status in REFUSED_AT_SUBMIT:
            return to_response(e)
    except Exception:
        pass  # an unknown model and the like: the task answers them, as it did before these checks
    return _HandOn(next_app, body)


def _task_store(request: Request):
    """BentoML's result store, found through its own cancel route (BentoML 1.4.40: a bound
    method of the app factory that holds `_result_store`); None if that moved."""
    app = request.scope.get("ganserve.bentoml_app")
    for route in getattr(app, "routes", []):
        if getattr(route, "path", None) == CANCEL_PATH:
            owner = getattr(route.endpoint, "__self__", None)
            return getattr(owner, "_result_store", None)
    return None


def _keep_cancelled(store) -> None:
    """Once: the store's set_result records `canceled` for a task cancelled here."""
    if getattr(store, "_ganserve_keeps_cancelled", False):
        return
    from _bentoml_impl.tasks.result import ResultStatus

    original = store.set_result

    async def set_result(task_id, result, status):
        if task_id in _cancelled_tasks:
            status = ResultStatus.CANCELED
        await original(task_id, result, status)

    store.set_result = set_result
    store._ganserve_keeps_cancelled = True


async def cancel(request: Request) -> Response:
    task_id = request.query_params.get("task_id")
    if not task_id:
        return to_response(RequestError("task_id", "required: the id POST /generate_dataset/submit answered"))
    store = _task_store(request)
    status: Optional[str] = None
    if store is not None:
        try:
            status = (await store.get_status(task_id)).status.value
        except KeyError:
            return to_response(RequestError("task_id", f"no task {task_id!r} on this server", 404))
    running = control.find(task_id)
    if running is None and status not in (None, "in_progress"):
        return to_response(RequestError("task_id", f"task {task_id} has already ended ({status})", 409))
    settings = get_settings()
    _cancelled_tasks.add(task_id)
    if running is not None:
        running.cancel()
    elif settings.output_dir is not None:
        # The job may run in another worker, or not have started yet: leave it the flag.
        flag = control.cancel_flag(settings.output_dir, task_id)
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()
    if store is not None:
        from _bentoml_impl.tasks.result import ResultStatus

        _keep_cancelled(store)
        await store.set_status(task_id, ResultStatus.CANCELED)
    log.warning(
        "task %s: cancel requested (%s)", task_id, running.name if running else "job in another worker or not started"
    )
    return JSONResponse(
        {
            "task_id": task_id,
            "status": "canceled",
            "detail": "the job stops after its current block; its complete shards stay valid, "
            "and submitting the same request again resumes it",
        }
    )
