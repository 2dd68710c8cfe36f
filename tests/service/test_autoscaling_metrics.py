"""The metrics deploy/k8s's autoscalers read (KEDA's query, prometheus-adapter's rule) are on a
real server's /metrics, as Prometheus would scrape them: renamed or dropped, the autoscaler would
read nothing and never scale."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.service.support import TOKEN

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def test_the_autoscalers_metrics_are_on_a_real_servers_metrics(real_server):
    text = (K8S / "components" / "keda" / "scaledobject.yaml").read_text()
    text += (K8S / "components" / "hpa" / "adapter-rules.yaml").read_text()
    names = set(re.findall(r"\b(ganserve_[a-z_]+)\{", text))
    assert len(names) >= 2
    with httpx.Client(base_url=real_server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        assert http.post("/sample", json={"n": 2, "seed": 1}).status_code == 200  # admission ran once
        metrics = http.get("/metrics").text
    for name in names:
        assert re.search(rf"^# TYPE {name} gauge$", metrics, flags=re.M), f"{name} is not a gauge on /metrics"
        assert re.search(rf"^{name}(\{{[^}}]*\}})? \d", metrics, flags=re.M), f"{name} has no sample"
