"""Models that change while serving, on a real `python -m service serve` with two workers:
ten version swaps under concurrent load fail no request, and every answer comes from a version that
was live at the time (poll mode); load and unload through tritonclient reach every worker
(explicit mode)."""

from __future__ import annotations

import io
import threading
import time

import httpx
import numpy as np
import pytest

from service.runtime.engine import Engine
from tests.servers import start_server, wait_workers
from tests.service.model_factory import install, make_model
from tests.service.support import TOKEN, real_server_env

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SWAPS = 10
POLL_S = 0.2
# A version may still answer this long after its successor's files are all in place: one poll
# interval, the successor's verification and warm-up, and the in-flight requests of a busy 2-core box.
SLACK_S = 3.0
# Explicit mode: how long every worker may take to follow a load or unload that another one took.
FOLLOW_S = 10.0
Z = np.linspace(-1, 1, 2 * 4, dtype=np.float32).reshape(2, 4)


def _server(tmp_path_factory, mode: str, versions: int):
    root = tmp_path_factory.mktemp(f"control-{mode}")
    live, stage = root / "models", root / "stage"
    for k in range(versions):
        make_model(stage / f"v{k}", "m", z_dim=4, seed=100 + k)
    install(stage / "v0" / "m", live / "m")
    make_model(live, "other", z_dim=4, seed=7)
    env = real_server_env(
        live,
        root,
        GANSERVE_DEFAULT_MODEL="m",
        GANSERVE_MODEL_CONTROL=mode,
        GANSERVE_POLL_INTERVAL_S=str(POLL_S),
        GANSERVE_WORKERS="2",
    )
    return root, live, stage, env


def test_ten_swaps_under_load_fail_no_request(tmp_path_factory):
    root, live, stage, env = _server(tmp_path_factory, "poll", SWAPS + 1)
    expected, versions = {}, []
    for k in range(SWAPS + 1):
        model = Engine.from_folder(stage / f"v{k}" / "m", device="cpu").get("m")
        versions.append(model.card.version)
        expected[model.card.version] = model.generate_inline(Z)
    answers: list[tuple[float, float, int, str, bytes]] = []
    stop = threading.Event()

    def drive() -> None:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            while not stop.is_set():
                t0 = time.monotonic()
                r = http.post("/sample", json={"latents": Z.tolist(), "format": "npy"})
                answers.append((t0, time.monotonic(), r.status_code, r.headers.get("x-model-version", ""), r.content))

    began, done = [0.0], [0.0]  # when each version's files started and finished going in
    with start_server(live, env, root) as server:
        # Both workers on v0 first: one that loaded its models after a swap would never have served
        # v0, and would answer a request pinning it 404 (never served here), not 409 (gone).
        wait_workers(server, 2)
        threads = [threading.Thread(target=drive) for _ in range(6)]
        for t in threads:
            t.start()
        try:
            for k in range(1, SWAPS + 1):
                time.sleep(0.8)
                began.append(time.monotonic())
                install(stage / f"v{k}" / "m", live / "m")
                done.append(time.monotonic())
            deadline = time.monotonic() + 30  # until every worker serves the last version
            while time.monotonic() < deadline:
                recent = [a for a in answers[-40:] if a[0] > done[-1] + SLACK_S]
                if len(recent) >= 40 and {a[3] for a in recent} == {versions[-1]}:
                    break
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            gone = http.post("/sample", json={"n": 1, "version": versions[0]})
            v2_gone = http.post(
                f"/v2/models/m.generator/versions/{versions[3]}/infer",
                json={"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}]},
            )
            listing = http.get("/models").json()
    statuses = {}
    for _, _, status, _, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses == {200: len(answers)} and len(answers) > 100, statuses  # zero errors
    for t0, t1, _, version, body in answers:
        k = versions.index(version)  # a version that was ever installed
        assert t1 >= began[k], (k, "answered before its files went in")
        if k < SWAPS:
            assert t0 <= done[k + 1] + SLACK_S, (k, f"still served {t0 - done[k + 1]:.2f} s after its successor")
        np.testing.assert_allclose(np.load(io.BytesIO(body)), expected[version], rtol=1e-6, atol=1e-7)
    assert len({a[3] for a in answers}) >= SWAPS // 2 + 1  # the swaps really happened under load
    assert answers[-1][3] == versions[-1]
    assert gone.status_code == 409 and versions[0] in gone.json()["error"]
    assert v2_gone.status_code == 409 and versions[3] in v2_gone.json()["error"]
    assert next(m for m in listing["models"] if m["name"] == "m")["version"] == versions[-1]


def test_explicit_load_and_unload_reach_every_worker(tmp_path_factory):
    tritonclient_http = pytest.importorskip("tritonclient.http")
    root, live, stage, env = _server(tmp_path_factory, "explicit", 2)
    with start_server(live, env, root) as server:
        triton = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))

        def settled(answers, within_s: float = FOLLOW_S) -> bool:
            """Within `within_s`, a round in which every one of 20 fresh connections (spread over
            the workers) passes `answers`: the worker that took a request applies it at once, the
            other follows the control file at its next poll, after verifying and warming the
            model, which on a busy 2-core box takes seconds, not one poll interval."""
            deadline = time.monotonic() + within_s
            while True:
                if all(answers() for _ in range(20)):
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(POLL_S)

        def everywhere(model: str, want: int) -> bool:
            return settled(
                lambda: (
                    httpx.post(
                        f"{server.url}/sample", json={"model": model, "n": 1}, headers=AUTH, timeout=30
                    ).status_code
                    == want
                )
            )

        install(stage / "v1" / "m", live / "m")
        assert everywhere("m", 200)
        version_before = httpx.get(f"{server.url}/models", headers=AUTH).json()["models"][0]["version"]
        triton.unload_model("other", headers=dict(AUTH))
        assert everywhere("other", 404)
        index = {m["name"]: m for m in triton.get_model_repository_index(headers=dict(AUTH))}
        assert index["other"]["state"] == "UNAVAILABLE" and index["m"]["state"] == "READY"
        triton.load_model("other", headers=dict(AUTH))
        assert everywhere("other", 200)
        triton.load_model("m", headers=dict(AUTH))  # explicit: the changed folder only now
        assert settled(
            lambda: (
                httpx.get(f"{server.url}/v2/models/m.generator", headers=AUTH, timeout=30).json()["versions"]
                != [version_before]
            )
        )
        from tritonclient.utils import InferenceServerException

        with pytest.raises(InferenceServerException, match="no model folder 'nope'"):
            triton.load_model("nope", headers=dict(AUTH))
        assert httpx.post(f"{server.url}/v2/repository/models/other/unload").status_code == 401  # behind the token
        triton.close()
