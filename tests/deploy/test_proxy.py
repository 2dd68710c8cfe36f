"""The scale-out proxy for real: nginx with the config docker-compose.yml runs, in front of two
`bentoml serve` replicas of the service on loopback ports, serving `tiny_models_dir`.

nginx reads deploy/nginx/ganserve.conf.template rendered by deploy/nginx/render.sh, the same two
files the compose `proxy` service uses; only the upstream addresses and the listen address
differ (loopback ports here, compose's service names there). Which replica served a request is
read from each replica's own /metrics. The checks run in file order: the last one kills a replica.

Replica 0 requires an API token (GANSERVE_API_TOKEN), replica 1 none: every request carries the
token (a replica without one ignores it), so the round robin, the pinned task routes and the
failover are checked with the token passing through nginx, and the guarded replica must refuse
a request without it, directly and through the proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest

from tests.servers import NGINX_DIR, REPO, Server, dead_url, metric_sum, nginx_config, replica_env, start_nginx

READY_TIMEOUT_S = 120  # two replicas importing onnxruntime on two shared cores
SAMPLE = {"model": "tiny-ring", "n": 2, "seed": 7}
TASK = {"name": "ring-tiny", "model": "tiny-ring", "samples": 20, "shard_size": 10, "block_size": 10}
TOKEN = "proxy-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow


def http(
    method: str, url: str, body: dict | None = None, timeout: float = 30, headers: dict | None = None
) -> tuple[int, bytes]:
    """The request with the API token (`headers` replace it: {} sends none)."""
    data = json.dumps(body).encode() if body is not None else None
    sent = dict(AUTH if headers is None else headers)
    if data:
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Replica(Server):
    """`bentoml serve` of the service, as the compose file's replicas run it (tests/servers.py
    stops it with every worker it forks)."""

    def __init__(self, index: int, models_dir: Path, root: Path, output_dir: Path) -> None:
        # Each its own BentoML home (BentoML keeps metrics files there); none of the developer's
        # GANSERVE_* settings. Replica 0 requires the token, and says the proxy's cache keys on it
        # (ganserve.conf.template keys on the credential).
        env = replica_env(
            models_dir,
            root / f"bentoml-home-{index}",
            token=TOKEN if index == 0 else None,
            GANSERVE_OUTPUT_DIR=str(output_dir),
        )
        self.token_required = index == 0
        super().__init__(f"replica {index}", env, root / f"replica-{index}.log", command="bentoml")

    def samples_served(self) -> float:
        """Successful POST /sample calls this replica answered, from its own /metrics."""
        status, text = http("GET", f"{self.url}/metrics")
        assert status == 200
        return metric_sum(text.decode(), "bentoml_service_request_total", endpoint="/sample", http_response_code="200")


# The access log names the replica(s) each request went to: see `upstreams_of`.
UPSTREAMS_LOG = "$request_method $uri $status $upstream_addr"


def render_nginx_config(root: Path, upstreams: list[str], listen: str) -> Path:
    return nginx_config(root, upstreams, listen, UPSTREAMS_LOG)


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by both replicas, as compose's `datasets` volume is."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def replicas(tiny_models_dir: Path, datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("replicas")
    started: list[Replica] = []
    try:
        for index in range(2):  # both start before either is awaited: they boot in parallel
            started.append(Replica(index, tiny_models_dir, root, datasets_dir))
        for replica in started:
            replica.wait_ready(READY_TIMEOUT_S)
        yield started
    finally:
        for replica in started:
            replica.stop()


class Proxy:
    def __init__(self, url: str, access_log: Path) -> None:
        self.url, self.access_log = url, access_log

    def upstreams_of(self, path: str) -> list[str]:
        """For each logged request to `path`, in order: the replicas nginx tried, comma-joined."""
        lines = [line.split(" ", 3) for line in self.access_log.read_text().splitlines()]
        return [upstream for _, uri, _, upstream in lines if uri == path]

    def upstreams_after(self, path: str, seen: int, timeout_s: float = 10.0) -> list[str]:
        """`upstreams_of(path)` past the first `seen`, once nginx has logged at least one more: it
        writes a request's line after the answer has gone out, so the client can get there first."""
        deadline = time.monotonic() + timeout_s
        while len(logged := self.upstreams_of(path)) <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        return logged[seen:]


@pytest.fixture(scope="module")
def proxy(nginx: str, replicas: list[Replica], tmp_path_factory: pytest.TempPathFactory) -> Proxy:
    root = tmp_path_factory.mktemp("nginx")
    server, url = start_nginx(nginx, root, [f"127.0.0.1:{r.port}" for r in replicas], UPSTREAMS_LOG)
    try:
        yield Proxy(url, root / "access.log")
    finally:
        server.stop()


def healthcheck(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "deploy" / "healthcheck.py"), url], capture_output=True, text=True, timeout=30
    )


def test_render_refuses_to_run_without_upstreams(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(NGINX_DIR / "render.sh"), str(NGINX_DIR / "ganserve.conf.template"), str(tmp_path / "out.conf")],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "GANSERVE_UPSTREAMS" in result.stderr
    assert not (tmp_path / "out.conf").exists()


def test_render_writes_one_server_per_upstream(tmp_path: Path) -> None:
    config = render_nginx_config(tmp_path, ["10.0.0.1:3000", "replica:3000"], "127.0.0.1:1")
    site = (tmp_path / "ganserve.conf").read_text()
    assert config.is_file()
    assert "    server 10.0.0.1:3000;\n    server replica:3000;\n" in site
    assert "listen 127.0.0.1:1;" in site
    assert "@GANSERVE_SERVERS@" not in site and "@GANSERVE_LISTEN@" not in site and "@GANSERVE_CACHE_DIR@" not in site


def test_healthcheck_script_passes_only_on_a_ready_replica(replicas: list[Replica]) -> None:
    ready = healthcheck(f"{replicas[0].url}/readyz")
    assert ready.returncode == 0, ready.stdout
    wrong = healthcheck(f"{replicas[1].url}/no-such-route")  # replica 1: no token, so the router's 404
    assert wrong.returncode == 1 and "HTTP 404" in wrong.stdout
    with dead_url() as nobody_there:
        nobody = healthcheck(f"{nobody_there}/readyz")
    assert nobody.returncode == 1


def test_the_replica_with_a_token_refuses_requests_without_it_directly_and_through_the_proxy(
    proxy: Proxy, replicas: list[Replica]
) -> None:
    for replica in replicas:
        assert http("POST", f"{replica.url}/sample", SAMPLE)[0] == 200
        assert http("POST", f"{replica.url}/sample", SAMPLE, headers={})[0] == (401 if replica.token_required else 200)
        assert http("GET", f"{replica.url}/readyz", headers={})[0] == 200  # the probes stay open
    # Round robin: of 6 requests without the token, the guarded replica gets some and refuses them.
    statuses = [http("POST", f"{proxy.url}/sample", SAMPLE, headers={})[0] for _ in range(6)]
    assert set(statuses) == {200, 401}, statuses


def test_requests_through_the_proxy_spread_over_both_replicas(proxy: Proxy, replicas: list[Replica]) -> None:
    before = [r.samples_served() for r in replicas]
    bodies = set()
    for _ in range(12):
        status, body = http("POST", f"{proxy.url}/sample", SAMPLE)
        assert status == 200, body
        bodies.add(body)
    served = [r.samples_served() - b for r, b in zip(replicas, before)]
    assert sum(served) == 12
    assert all(n >= 3 for n in served), f"round robin should share the load, got {served}"
    # Same seed, same model: every replica answers the same samples.
    assert len(bodies) == 1


def test_a_dataset_task_runs_through_the_proxy(proxy: Proxy, replicas: list[Replica], datasets_dir: Path) -> None:
    # A BentoML task is known only to the replica that took it: submitted and then polled
    # through the proxy, it works only because nginx pins every task route to one replica.
    status, body = http("POST", f"{proxy.url}/generate_dataset/submit", TASK)
    assert status == 200, body
    task_id = json.loads(body)["task_id"]
    deadline = time.monotonic() + 60
    while True:
        status, body = http("GET", f"{proxy.url}/generate_dataset/status?task_id={task_id}")
        assert status == 200, body  # a replica that never saw the task would answer 404
        state = json.loads(body)["status"]
        if state != "in_progress" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state == "completed", body
    status, body = http("GET", f"{proxy.url}/generate_dataset/get?task_id={task_id}")
    assert status == 200, body
    # The answer is the manifest the replica wrote into the shared datasets directory.
    assert json.loads(body) == json.loads((datasets_dir / TASK["name"] / "manifest.json").read_text())
    upstreams = (
        proxy.upstreams_of("/generate_dataset/submit")
        + proxy.upstreams_of("/generate_dataset/status")
        + proxy.upstreams_after("/generate_dataset/get", 0)
    )
    assert len(upstreams) >= 3
    assert len(set(upstreams)) == 1 and upstreams[0] in {f"127.0.0.1:{r.port}" for r in replicas}


def test_the_proxy_keeps_answering_when_a_replica_dies(proxy: Proxy, replicas: list[Replica]) -> None:
    # Kill the replica the tasks are pinned to, so that both locations must fail over.
    pinned = proxy.upstreams_of("/generate_dataset/submit")[0]
    victim = next(r for r in replicas if f"127.0.0.1:{r.port}" == pinned)
    survivor = next(r for r in replicas if r is not victim)
    victim.kill()
    assert healthcheck(f"{victim.url}/readyz").returncode == 1  # it really is gone
    before = survivor.samples_served()
    for _ in range(8):
        status, body = http("POST", f"{proxy.url}/sample", SAMPLE)
        assert status == 200, body
    assert survivor.samples_served() - before == 8
    assert http("GET", f"{proxy.url}/readyz")[0] == 200
    seen = len(proxy.upstreams_of("/generate_dataset/status"))
    status, _ = http("GET", f"{proxy.url}/generate_dataset/status?task_id=nope")
    assert status != 502
    assert proxy.upstreams_after("/generate_dataset/status", seen)[-1].endswith(f"127.0.0.1:{survivor.port}")


def test_pinned_seeded_gets_are_served_from_the_proxys_cache(proxy: Proxy, replicas: list[Replica]) -> None:
    """A GET /sample with a seed and a pinned version is answered once by a replica, then by
    nginx's cache (X-Cache-Status: HIT), byte for byte; another credential, an unpinned request
    and a POST always reach a replica."""
    status, body = http("GET", f"{proxy.url}/models", headers=AUTH)
    version = next(m for m in json.loads(body)["models"] if m["name"] == "tiny-digits")["version"]
    query = f"/sample?model=tiny-digits&seed=41&n=3&format=npy&version={version}"
    first = httpx.get(proxy.url + query, headers=AUTH, timeout=30)
    second = httpx.get(proxy.url + query, headers=AUTH, timeout=30)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache-status"] == "MISS" and second.headers["x-cache-status"] == "HIT"
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    other = httpx.get(proxy.url + query, headers={"Authorization": "Bearer someone-else"}, timeout=30)
    assert other.headers["x-cache-status"] != "HIT"  # their own key: a replica answers (or refuses)
    unpinned = query.replace(f"&version={version}", "")
    for _ in range(2):
        r = httpx.get(proxy.url + unpinned, headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.headers["x-cache-status"] != "HIT"  # no-cache: revalidated
