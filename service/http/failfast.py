"""Fail fast under plain `bentoml serve`: a worker that cannot start stops the whole server.

BentoML runs each worker under circus, which starts a worker again whenever it exits (forever,
every few seconds; inside a container it does not restart it at all). A default model that cannot
load thus gave ~64 restarts in ten minutes and a /readyz that hung unanswered (the listening
socket is the arbiter's, so connections were accepted and never served): nothing a restart policy
could see. `python -m service serve` checks the models before starting BentoML; the image and
compose run `bentoml serve` directly, hence this:

- in the `bentoml serve` process (the circus arbiter, which imports the service before it starts
  any worker), `install_in_arbiter()` sets a SIGUSR1 handler that stops every worker and exits
  with EXIT_STARTUP_FAILED;
- a worker whose start-up fails calls `worker_failed(reason)`: the reason goes to the log at
  CRITICAL, then SIGUSR1 to its parent, the arbiter.

Elsewhere (tests' in-process app, `bentoml build`) both do nothing but log.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

log = logging.getLogger("ganserve.failfast")
EXIT_STARTUP_FAILED = 3  # uvicorn's own code for "application startup failed"
STOP_WORKERS_S = 10.0
_SIGNAL = signal.SIGUSR1  # circus handles HUP QUIT INT TERM WINCH CHLD, not USR1


def _is_worker() -> bool:
    """True in a BentoML server worker: its `main` sets the worker index before loading the service."""
    try:
        from bentoml._internal.context import server_context
    except Exception:
        return False
    return server_context.worker_index is not None


def _is_arbiter() -> bool:
    """The `bentoml serve` process itself (`bentoml serve ...` or `python -m bentoml serve ...`)."""
    return (
        not _is_worker()
        and len(sys.argv) > 1
        and sys.argv[1] == "serve"
        and os.path.basename(sys.argv[0]) in ("bentoml", "__main__.py")
    )


def _stop_everything(signum, frame) -> None:
    log.critical(
        "a worker could not start (its reason is logged above): stopping the server, exit code %d", EXIT_STARTUP_FAILED
    )
    try:
        import psutil

        children = psutil.Process().children(recursive=True)
        for child in children:
            try:
                child.terminate()
            except psutil.NoSuchProcess:
                pass
        _, left = psutil.wait_procs(children, timeout=STOP_WORKERS_S)
        for child in left:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
    finally:
        for handler in logging.getLogger().handlers + log.handlers:
            try:
                handler.flush()
            except Exception:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        # Not SystemExit: circus' event loop would have to unwind cleanly for it to reach the CLI.
        os._exit(EXIT_STARTUP_FAILED)


def install_in_arbiter() -> bool:
    """In the `bentoml serve` process only: a worker's SIGUSR1 stops the server (True when set)."""
    if not _is_arbiter() or threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(_SIGNAL, _stop_everything)
    return True


def worker_failed(reason: str) -> None:
    """A worker's start-up failed: say why, and have the arbiter stop the server (a worker only)."""
    log.critical("cannot start: %s", reason)
    if _is_worker():
        try:
            os.kill(os.getppid(), _SIGNAL)
        except OSError as e:
            log.error("could not signal the server process %d to stop: %s", os.getppid(), e)
