"""The HTTP stack under BentoML: its worker leaves uvicorn's `http` and `loop` on "auto", so the
C parser (httptools) and uvloop serve requests only when they are installed (pyproject.toml lists
them; without them uvicorn quietly falls back to the pure-Python h11 and asyncio, which serve
one-sample requests markedly slower: docs/PERFORMANCE.md#finding-httptools-uvloop)."""

from __future__ import annotations

import uvicorn


async def _app(scope, receive, send) -> None:  # pragma: no cover - never called
    raise AssertionError


def test_uvicorn_auto_picks_httptools_and_uvloop():
    config = uvicorn.Config(app=_app, log_config=None)  # what BentoML's worker passes: no http, no loop
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    loop = config.get_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop"), type(loop)
    finally:
        loop.close()
