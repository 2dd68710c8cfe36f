"""Phase spans (runtime/tracing.py) exported by a real server over OTLP/HTTP to a real receiver: a
small HTTP server on loopback, in the test, that decodes what arrives with OpenTelemetry's own
protobuf messages. With GANSERVE_TRACING on and BentoML's `otlp` exporter pointed at it, a
/sample request's server span has the phases admission wait, batcher wait, graph run, encode and
send as children in its trace, each with the model, version, n and format; off, the same
exporter configuration sends nothing."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.servers import start_server
from tests.service.support import DEFAULT, TOKEN, server_env_8_threads

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHASES = {"admission wait", "batcher wait", "graph run", "encode", "send"}


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[dict] = []
        self.posts = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server's name for it
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
        if ok:
            export = ExportTraceServiceRequest.FromString(body)
            self.server.posts += 1
            for resource in export.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.server.spans.append(_span(span, scope.scope.name))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


def _span(span, scope: str) -> dict:
    attributes = {}
    for kv in span.attributes:
        value = kv.value
        attributes[kv.key] = value.string_value if value.HasField("string_value") else value.int_value
    return {
        "name": span.name,
        "scope": scope,
        "trace": span.trace_id.hex(),
        "id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
        "attributes": attributes,
    }


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.shutdown()
        r.server_close()


def _env(models_dir, root, endpoint: str, tracing: bool) -> dict:
    options = (
        "services.ganserve.tracing.exporter_type=otlp services.ganserve.tracing.sample_rate=1.0 "
        f"services.ganserve.tracing.otlp.protocol=http services.ganserve.tracing.otlp.endpoint={endpoint}"
    )
    return {
        **server_env_8_threads(models_dir, root),
        "GANSERVE_TRACING": "true" if tracing else "false",
        "BENTOML_CONFIG_OPTIONS": options,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s, not 5 s
    }


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_phases_reach_a_real_otlp_receiver(service_models_dir, tmp_path):
    with (
        receiver() as r,
        start_server(service_models_dir, _env(service_models_dir, tmp_path, r.endpoint, True), tmp_path) as server,
    ):
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            version = next(m for m in http.get("/models").json()["models"] if m["name"] == DEFAULT)["version"]
            r.spans.clear()  # /models' own span
            answer = http.post("/sample", json={"model": DEFAULT, "n": 24, "seed": 5, "format": "npy"})
            assert answer.status_code == 200, answer.text
            sample_trace = lambda: [s for s in r.spans if s["name"] in PHASES]
            assert _wait_for(lambda: {s["name"] for s in sample_trace()} >= PHASES), r.spans
            filtered = http.post("/sample", json={"model": DEFAULT, "n": 8, "seed": 6, "min_realness": 0.2})
            assert filtered.status_code == 200, filtered.text
            # ... in a worker thread: its graph runs are phases of its own trace too
            assert _wait_for(lambda: len({s["trace"] for s in r.spans if s["name"] == "graph run"}) >= 2), r.spans
    spans = list(r.spans)
    phases = [s for s in spans if s["name"] in PHASES]
    trace = phases[0]["trace"]
    in_trace = {s["id"]: s for s in spans if s["trace"] == trace}
    server_span = next(s for s in in_trace.values() if s["parent"] not in in_trace)  # the trace's root
    assert server_span["scope"].startswith("opentelemetry.instrumentation.asgi"), server_span
    assert server_span["attributes"]["ganserve.model"] == DEFAULT
    first = [s for s in phases if s["trace"] == trace]
    assert {s["name"] for s in first} == PHASES, first
    for s in first:
        assert s["parent"] == server_span["id"], s  # each phase a child of the request's span
        assert s["attributes"]["ganserve.model"] == DEFAULT and s["attributes"]["ganserve.version"] == version
        assert s["attributes"]["ganserve.n"] == 24 and s["attributes"]["ganserve.format"] == "npy"
        assert server_span["start"] <= s["start"] <= s["end"], s
        # BentoML's middleware ends the server span as the last byte goes, inside `send`.
        assert s["end"] <= server_span["end"] + (50_000_000 if s["name"] == "send" else 0), s
    by_name = {s["name"]: s for s in first}
    assert by_name["batcher wait"]["end"] <= by_name["graph run"]["start"] + 1
    assert by_name["graph run"]["attributes"]["rows"] >= 24
    assert by_name["admission wait"]["end"] <= by_name["batcher wait"]["start"]
    assert by_name["encode"]["end"] <= by_name["send"]["end"]


def test_with_tracing_off_the_configured_exporter_sends_nothing(service_models_dir, tmp_path):
    with (
        receiver() as r,
        start_server(service_models_dir, _env(service_models_dir, tmp_path, r.endpoint, False), tmp_path) as server,
    ):
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            for _ in range(3):
                assert http.post("/sample", json={"n": 8, "format": "npy"}).status_code == 200
        time.sleep(1.0)  # ten export intervals
    assert r.posts == 0 and r.spans == []
