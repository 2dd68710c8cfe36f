"""What every route reads from the app: the engine, once the models are loaded, and the size up to
which a body is parsed on the event loop.

service.py sets `app.state.engine` once the models are loaded (and `app.state.bentoml_spec` when it
is imported); until then every model route answers 503 naming `server`.
"""

from __future__ import annotations

from typing import Optional

from starlette.requests import Request

from service.core.problems import RequestError
from service.runtime.engine import Engine

# Bodies up to this are parsed on the event loop (a couple of ms at most); larger ones (latents by
# the thousand, V2 tensors) in a worker thread, so that one request never stalls the loop.
LOOP_MAX_BODY_BYTES = 256 * 1024


def engine_of(request: Request, required: bool = True) -> Optional[Engine]:
    """The serving engine; before the models have loaded, a 503 naming `server` (None when not
    `required`: the caller has something to do without it)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None and required:
        raise RequestError("server", "models are still loading", 503)
    return engine
