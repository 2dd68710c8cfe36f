"""Admission control (service/runtime/admission.py): a bound on the work a worker holds at once, a short
bounded queue, then 503 with Retry-After; on every route that does model work; shown on /metrics
and in /docs.json; honoured by the dataset generator's HTTP source."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service.core import formats
from service.runtime import admission
from service.runtime.admission import Admission, Overloaded
from tests.servers import metric_sum

# --- the controller itself (metrics=False: Prometheus' multiprocess files must first be made by
# the app under test, in its directory) -----------------------------------------------------------


def test_admits_within_the_budget_queues_past_it_and_refuses_when_the_queue_is_full():
    adm = Admission(budget=100, queue=1, wait_s=5.0, metrics=False)

    async def scenario():
        first = await adm.enter(80)
        assert (adm.in_flight, adm.in_flight_bytes) == (1, 80)
        second = asyncio.create_task(adm.enter(50))  # 130 > 100: waits
        await asyncio.sleep(0.05)
        assert adm.queued == 1 and not second.done()
        with pytest.raises(Overloaded) as refused:  # the queue (1) is full: refused at once
            await adm.enter(1)
        assert refused.value.status == 503 and refused.value.retry_after_s == 5
        first()
        release_second = await asyncio.wait_for(second, 1)
        assert (adm.in_flight, adm.in_flight_bytes, adm.queued) == (1, 50, 0)
        release_second()
        release_second()  # idempotent: an answer's release may run twice
        assert (adm.in_flight, adm.in_flight_bytes) == (0, 0)

    asyncio.run(scenario())
    assert adm.refused == 1


def test_a_wait_past_the_limit_is_refused_and_leaves_the_queue():
    adm = Admission(budget=100, queue=8, wait_s=0.2, metrics=False)

    async def scenario():
        held = await adm.enter(100)
        started = time.monotonic()
        with pytest.raises(Overloaded):
            await adm.enter(10)
        assert 0.15 < time.monotonic() - started < 2
        assert adm.queued == 0
        held()
        (await adm.enter(10))()

    asyncio.run(scenario())


def test_a_request_dearer_than_the_whole_budget_runs_alone_and_order_is_first_come():
    adm = Admission(budget=100, queue=8, wait_s=5.0, metrics=False)

    async def scenario():
        big = await adm.enter(1000)  # alone: let in
        small_a = asyncio.create_task(adm.enter(10))
        await asyncio.sleep(0.01)
        assert not small_a.done()  # nothing joins a request over the budget
        big()
        (await asyncio.wait_for(small_a, 1))()

    asyncio.run(scenario())


def test_threads_and_the_event_loop_share_one_budget():
    adm = Admission(budget=100, queue=8, wait_s=5.0, metrics=False)
    holding, done = threading.Event(), threading.Event()

    def from_a_thread():
        with adm.admit_sync(100):
            holding.set()
            done.wait(5)

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    assert holding.wait(5)

    async def scenario():
        waiting = asyncio.create_task(adm.enter(10))
        await asyncio.sleep(0.05)
        assert not waiting.done() and adm.queued == 1
        done.set()
        (await asyncio.wait_for(waiting, 2))()

    asyncio.run(scenario())
    thread.join(5)
    assert adm.in_flight == 0 and adm.in_flight_bytes == 0


def test_a_cancelled_waiter_leaves_no_charge_behind():
    adm = Admission(budget=100, queue=8, wait_s=5.0, metrics=False)

    async def scenario():
        held = await adm.enter(100)
        waiting = asyncio.create_task(adm.enter(10))
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        held()
        assert (adm.in_flight, adm.in_flight_bytes, adm.queued) == (0, 0, 0)

    asyncio.run(scenario())


def test_cost_grows_with_samples_and_is_largest_for_json():
    json_, npy, png = (formats.get(f).peak_bytes_per_value for f in ("json", "npy", "png"))
    one = admission.sample_cost(1, 100, 784, json_)
    assert admission.sample_cost(4096, 100, 784, json_) > 4000 * json_ * 784
    assert (
        admission.sample_cost(4096, 100, 784, json_)
        > admission.sample_cost(4096, 100, 784, npy)
        >= admission.sample_cost(4096, 100, 784, png)
    )
    assert one >= admission.MIN_COST


# --- on the in-process app ---------------------------------------------------------------------


@pytest.fixture
def tight(app, client, monkeypatch):
    """The app's admission replaced by one whose budget the test holds full."""
    adm = Admission(budget=1, queue=4, wait_s=0.3)
    monkeypatch.setattr(admission, "_instance", adm)
    return adm


ROUTES = [
    ("/sample", {"json": {"n": 4, "seed": 1}}),
    ("/interpolate", {"json": {"steps": 3, "seeds": [1, 2]}}),
    ("/score", {"json": {"samples": np.zeros((2, 1, 8, 8)).tolist()}}),
]


@pytest.mark.parametrize("path,body", ROUTES, ids=[p for p, _ in ROUTES])
def test_every_model_route_waits_then_answers_503_with_retry_after(client, tight, path, body):
    with tight.admit_sync(1):  # the budget is full: every request waits, then is refused
        started = time.monotonic()
        response = client.post(path, **body)
        waited = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"].startswith("server: overloaded")
    assert waited >= 0.25
    assert client.post(path, **body).status_code == 200  # the budget is free again
    assert (tight.in_flight, tight.in_flight_bytes, tight.queued) == (0, 0, 0)
    assert tight.refused == 1


def test_a_waiting_request_is_served_when_room_is_made(client, tight):
    tight.wait_s = 5.0
    release = threading.Event()

    def hold():
        with tight.admit_sync(1):
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    while tight.in_flight == 0:
        time.sleep(0.01)
    threading.Timer(0.3, release.set).start()
    response = client.post("/sample", json={"n": 2, "seed": 3, "format": "npy"})
    holder.join(5)
    assert response.status_code == 200
    assert tight.refused == 0


def test_metrics_count_refusals(client, tight):
    """The in-flight and queue gauges are checked on a real server (test_memory_limit.py): in one
    test process BentoML's metrics client, when collected, deletes this pid's live-gauge files."""
    with tight.admit_sync(1):
        assert client.post("/sample", json={"n": 1}).status_code == 503
        text = client.get("/metrics").text
    assert metric_sum(text, "ganserve_refused_requests_total") >= 1


def test_gauges_follow_a_burst_within_the_publish_interval_without_a_write_per_request(monkeypatch):
    """Three multiprocess gauge writes per admit and release were a tenth of a one-sample answer's
    CPU: the state is published at most every PUBLISH_INTERVAL_S, and the last state of a burst
    (and a request still held) shows within that interval."""
    from service.runtime import metrics

    written = []
    monkeypatch.setattr(metrics, "admission_state", lambda *state: written.append((time.monotonic(), state)))
    adm = Admission(budget=1000, queue=8, wait_s=1.0, metrics=True)

    def settled(expected, within=2.0):
        deadline = time.monotonic() + within
        while not (written and written[-1][1] == expected):
            assert time.monotonic() < deadline, (expected, written[-3:])
            time.sleep(0.01)

    t0 = time.monotonic()
    for _ in range(2000):
        with adm.admit_sync(10):
            pass
    burst_s = time.monotonic() - t0
    settled((0, 0, 0))
    assert len(written) <= burst_s / admission.PUBLISH_INTERVAL_S + 3  # not one write per change
    with adm.admit_sync(300):
        settled((1, 300, 0))  # a request still held shows, without a further change to wake it
    settled((0, 0, 0))


def test_docs_json_documents_the_503_and_its_retry_after(client):
    spec = client.get("/docs.json").json()
    for path in ("/sample", "/interpolate", "/score"):
        answer = spec["paths"][path]["post"]["responses"]["503"]
        assert "Overloaded" in answer["description"]
        assert "Retry-After" in answer["headers"]


# --- the dataset generator's HTTP source -------------------------------------------------------


def test_the_http_source_waits_as_retry_after_says_without_using_up_retries(client, tight, monkeypatch):
    """The dataset generator's HTTP source (through service.client.Client, the one HTTP client)
    against the real app: a MockTransport would be a mock, so the app answers through the
    TestClient (an httpx.Client) itself."""
    from service.client import Client
    from service.datasets.sources import HttpSource

    source = HttpSource.__new__(HttpSource)
    # retries=0: any wait that used up a retry would fail the request. max_backoff_s keeps the
    # waits short (Retry-After is capped by it). The real app answers through the TestClient.
    source.client = Client("http://testserver", retries=0, backoff_s=0.0, max_backoff_s=0.05)
    source.client.http = client
    hold = tight.admit_sync(1)
    hold.__enter__()
    threading.Timer(0.5, hold.__exit__, (None, None, None)).start()
    response = source.client.request("POST", "/sample", json={"n": 2, "seed": 1, "format": "npy"})
    assert response.status_code == 200
    assert tight.refused >= 1 and source.failed_attempts == 0  # refused, waited, never gave up
