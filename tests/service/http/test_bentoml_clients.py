"""BentoML's own clients (bentoml.SyncHTTPClient, AsyncHTTPClient) against a real server: every
API they can call (/sample, /interpolate), in every format it answers, as a new user would call
them. They read /schema.json, so this is also the test that its schemas stay usable by them."""

from __future__ import annotations

import asyncio
import io
import json

import bentoml
import httpx
import numpy as np
import pytest

from tests.service.support import DEFAULT, TOKEN

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CALLS = [
    ("sample", {"n": 3, "seed": 5}),
    ("interpolate", {"seeds": [1, 2], "steps": 4}),
    ("interpolate", {"latents": [[0.1] * 8, [-0.2] * 8], "steps": 3, "method": "lerp"}),
]


@pytest.fixture(scope="module")
def server(real_server) -> str:
    return real_server


def _check(fmt: str, got: bytes, want: httpx.Response) -> None:
    """What the client returns is the answer's bytes, decodable as the format says."""
    assert isinstance(got, bytes) and got == want.content
    if fmt == "json":
        assert json.loads(got)["model"] == DEFAULT
    elif fmt == "npy":
        assert np.load(io.BytesIO(got), allow_pickle=False).dtype == np.float32
    else:
        assert got.startswith(b"\x89PNG")


@pytest.mark.parametrize("fmt", ["json", "npy", "png"])
def test_sync_client_calls_every_api_in_every_format(server, fmt):
    with (
        bentoml.SyncHTTPClient(server, token=TOKEN, server_ready_timeout=30) as client,
        httpx.Client(base_url=server, headers=AUTH, timeout=30) as http,
    ):
        assert {"sample", "interpolate"} <= set(client.endpoints)
        for api, body in CALLS:
            _check(fmt, getattr(client, api)(**body, format=fmt), http.post(f"/{api}", json={**body, "format": fmt}))


def test_async_client_calls_every_api_in_every_format(server):
    async def run() -> list[tuple[str, dict, bytes]]:
        async with bentoml.AsyncHTTPClient(server, token=TOKEN, server_ready_timeout=30) as client:
            calls = [(api, {**body, "format": fmt}) for api, body in CALLS for fmt in ("json", "npy", "png")]
            answers = await asyncio.gather(*(getattr(client, api)(**body) for api, body in calls))
            return [(api, body, got) for (api, body), got in zip(calls, answers)]

    answered = asyncio.run(run())
    assert [(api, body["format"]) for api, body, _ in answered] == [
        (api, fmt) for api, _ in CALLS for fmt in ("json", "npy", "png")
    ]
    with httpx.Client(base_url=server, headers=AUTH, timeout=30) as http:
        for api, body, got in answered:
            _check(body["format"], got, http.post(f"/{api}", json=body))


def test_clients_get_the_servers_refusals(server):
    with bentoml.SyncHTTPClient(server, token=TOKEN, server_ready_timeout=30) as client:
        with pytest.raises(bentoml.exceptions.BentoMLException, match="unknown model 'nope'"):
            client.sample(model="nope")
        with pytest.raises(bentoml.exceptions.BentoMLException, match="seeds"):
            client.interpolate(seeds=[1])
    with bentoml.SyncHTTPClient(server, token="wrong", server_ready_timeout=30) as client:
        with pytest.raises(bentoml.exceptions.BentoMLException, match="wrong bearer token"):
            client.sample(n=1)
