"""What the service's tests share besides fixtures: the settings under test and the environment of
the app and of real server subprocesses. (Fixtures stay in conftest.py; tests import these.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Deprecation notices raised inside BentoML and its dependencies (not actionable here, and fatal
# under -W error), filtered by the module they come from, plus starlette's notice about httpx.
THIRD_PARTY_WARNINGS = [
    "ignore::DeprecationWarning:pathspec.*",
    "ignore::DeprecationWarning:_bentoml_sdk.*",
    "ignore::DeprecationWarning:_bentoml_impl.*",
    "ignore::DeprecationWarning:bentoml.*",
    "ignore:Using `httpx` with `starlette.testclient` is deprecated",
]
TOKEN = "test-token-123"
MAX_N = 256  # small limits keep the limit tests cheap
MAX_BODY = 1 << 20
DEFAULT = "tiny-digits"
COND = "tiny-cond"
STYLE = "tiny-style"  # a style-based network written in the tests (tests/style_factory.py), packed


def service_env(models_dir: Path, root: Path) -> dict[str, str]:
    """The environment of the app under test (in-process) and of the real server subprocess."""
    (root / "prometheus").mkdir(parents=True, exist_ok=True)
    return {
        "GANSERVE_MODELS_DIR": str(models_dir),
        "GANSERVE_DEFAULT_MODEL": DEFAULT,
        "GANSERVE_DEVICE": "cpu",  # byte-exact determinism tests assume the CPU provider
        "GANSERVE_BACKEND": "onnxruntime",  # ... of onnxruntime (auto may pick OpenVINO: test_backends.py)
        "GANSERVE_WORKERS": "1",  # one process: tests that need two set it themselves
        "GANSERVE_MAX_N": str(MAX_N),
        "GANSERVE_MAX_BODY_BYTES": str(MAX_BODY),
        "GANSERVE_API_TOKEN": TOKEN,
        "GANSERVE_THREADS": "4",
        # npy answers of 64 samples and more stream in blocks (core/streaming.py; off by default),
        # so that the tests' small n (MAX_N) exercise the streamed path too.
        "GANSERVE_STREAM_BLOCK_ROWS": "32",
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        # BentoML's /metrics reads Prometheus' multiprocess files; `bentoml serve` sets this itself.
        "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus"),
    }


def real_server_env(models_dir: Path, root: Path, **overrides: str) -> dict[str, str]:
    """service_env for a real server subprocess (`bentoml serve` makes its own Prometheus
    directory), with GANSERVE_* or other `overrides`."""
    env = service_env(models_dir, root)
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    return {**env, **overrides}


def server_env_8_threads(models_dir, root) -> dict[str, str]:
    return real_server_env(models_dir, root, GANSERVE_THREADS="8")


@contextmanager
def budget_held(monkeypatch, budget: int, held: int, wait_s: float = 0.3) -> Iterator:
    """This process's admission (runtime/admission.py) replaced by one of `budget` bytes, `held` of
    them taken by another request in a thread for as long as the block runs: what the routes under
    test get is what is left. Yields the Admission, to read its counters."""
    import threading

    from service.runtime import admission

    adm = admission.Admission(budget=budget, queue=8, wait_s=wait_s, metrics=False)
    monkeypatch.setattr(admission, "_instance", adm)
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with adm.admit_sync(held):
            entered.set()
            leave.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(5), "the holding request was not admitted"
        yield adm
    finally:
        leave.set()
        holder.join()
