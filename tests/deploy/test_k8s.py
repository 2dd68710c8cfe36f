"""deploy/k8s: every overlay renders with the machine's `kubectl kustomize`, the built-in kinds
validate strictly against the Kubernetes schemas that kubernetes-validate bundles, and the
rendered manifests hold what breaks in production when it is wrong: probes on the paths and port
the server answers, a token from a Secret, memory above the measured peak, a non-root read-only
container, selectors that select the pods, the GPU only where meant. No cluster runs here."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import REPO
from tests.deploy.kustomize import K8S, render

TARGETS = ("base", "overlays/cpu", "overlays/gpu", "overlays/cpu-hpa", "kserve")
KUBERNETES = "1.32.0"  # the release the manifests are checked against (preStop's `sleep` needs 1.30+)
SERVER_PORT = 3000  # what `bentoml serve` and the image listen on (bentofile.yaml, docker-compose.yml)
MEASURED_PEAK_MB = 464  # one worker's peak RSS over the memory soak (docs/PERFORMANCE.md#memory-goal)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {target: render(target) for target in TARGETS}


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def the(docs: list[dict], kind: str) -> dict:
    (doc,) = of_kind(docs, kind)
    return doc


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def megabytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", quantity).groups()
    scale = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1e3, "M": 1e6, "G": 1e9, None: 1}[unit]
    return float(number) * scale / 1e6


def test_the_memory_figure_here_is_the_one_in_the_performance_page():
    text = (REPO / "docs" / "PERFORMANCE.md").read_text()
    assert re.search(rf"\|\s*\*\*met\*\*\s*\|\s*{MEASURED_PEAK_MB} MB", text), "the measured peak changed: resize"


@pytest.mark.parametrize("target", TARGETS)
def test_every_built_in_kind_validates_strictly(rendered, target):
    checked = 0
    for doc in rendered[target]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            assert doc["kind"] in ("ScaledObject", "InferenceService"), f"{doc['kind']}: no schema"
    assert checked >= (0 if target == "kserve" else 4)


def test_strict_validation_would_catch_a_misspelt_field(rendered):
    deployment = the(rendered["base"], "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container(broken)["readinessProbee"] = container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


@pytest.mark.parametrize("target", ("base", "overlays/cpu", "overlays/gpu", "overlays/cpu-hpa"))
def test_the_deployment_is_what_production_needs(rendered, target):
    docs = rendered[target]
    deployment = the(docs, "Deployment")
    pod = deployment["spec"]["template"]
    c = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": SERVER_PORT}
    # Probes on the routes the server answers without a token, on its port.
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ("http", SERVER_PORT)
    # The token only from a Secret; no literal secret anywhere.
    env = {e["name"]: e for e in c["env"]}
    assert env["GANSERVE_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "ganserve-token", "key": "token"}
    assert "value" not in env["GANSERVE_API_TOKEN"]
    # Memory above one worker's measured peak, and one worker per pod so that figure applies.
    settings = the(docs, "ConfigMap") if target != "overlays/cpu-hpa" else _settings(docs)
    assert settings["data"]["GANSERVE_WORKERS"] == "1"
    assert megabytes(c["resources"]["limits"]["memory"]) > 1.3 * MEASURED_PEAK_MB
    assert megabytes(c["resources"]["requests"]["memory"]) >= MEASURED_PEAK_MB
    # Non-root, read-only root filesystem, and somewhere writable for BentoML's own files.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["capabilities"]["drop"] == [
        "ALL"
    ]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]] and env["BENTOML_HOME"]["value"].startswith("/tmp/")
    # Drained, not cut: a pause before SIGTERM inside a grace period longer than it.
    assert pod["spec"]["terminationGracePeriodSeconds"] > c["lifecycle"]["preStop"]["sleep"]["seconds"] + 20
    # The selectors select these pods: the Deployment's, the Service's, the budget's.
    labels = pod["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        the(docs, "Service")["spec"]["selector"],
        the(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector and selector.items() <= labels.items()
    assert the(docs, "Service")["spec"]["ports"][0]["targetPort"] in ports
    # Every setting the ConfigMap passes is one the service reads.
    known = _service_settings()
    assert set(settings["data"]) <= known, set(settings["data"]) - known


def _settings(docs: list[dict]) -> dict:
    return next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "ganserve-settings")


def _service_settings() -> set[str]:
    text = (REPO / "service" / "settings.py").read_text()
    return {f"GANSERVE_{name.upper()}" for name in re.findall(r"^    (\w+): [^=]+=", text, flags=re.M)}


def test_the_gpu_only_where_meant(rendered):
    gpu = container(the(rendered["overlays/gpu"], "Deployment"))
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert the(rendered["overlays/gpu"], "ConfigMap")["data"]["GANSERVE_DEVICE"] == "cuda"
    assert the(rendered["overlays/gpu"], "Deployment")["spec"]["template"]["spec"]["nodeSelector"]
    for target in ("base", "overlays/cpu", "overlays/cpu-hpa"):
        cpu = container(the(rendered[target], "Deployment"))
        assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
        assert _settings(rendered[target])["data"]["GANSERVE_DEVICE"] == "cpu"
    # The models from a read-only volume where the overlay says so, polled for changes.
    c = container(the(rendered["overlays/gpu"], "Deployment"))
    models = next(m for m in c["volumeMounts"] if m["mountPath"] == "/models")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert (
        models["readOnly"] is True
        and env["GANSERVE_MODELS_DIR"] == "/models"
        and env["GANSERVE_MODEL_CONTROL"] == "poll"
    )


def autoscaler_metric_names() -> set[str]:
    """The ganserve metrics the autoscalers read (KEDA's query, prometheus-adapter's rules)."""
    text = (K8S / "components" / "keda" / "scaledobject.yaml").read_text()
    text += (K8S / "components" / "hpa" / "adapter-rules.yaml").read_text()
    return set(re.findall(r"\b(ganserve_[a-z_]+)\{", text))


def test_the_autoscalers_scale_the_deployment_on_ganserve_metrics(rendered):
    names = autoscaler_metric_names()
    assert names == {"ganserve_inflight_requests", "ganserve_queued_requests"}
    scaled = the(rendered["overlays/cpu"], "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == the(rendered["overlays/cpu"], "Deployment")["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert {"serverAddress", "query", "threshold"} <= set(trigger["metadata"])
    assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA's metadata is strings
    assert float(trigger["metadata"]["threshold"]) > 0
    assert scaled["spec"]["minReplicaCount"] >= 2  # the budget's maxUnavailable 1 leaves one serving
    # KEDA hands `advanced.horizontalPodAutoscalerConfig.behavior` to the HPA it makes: the
    # built-in schema checks it there.
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 2, "behavior": behavior},
    }
    kubernetes_validate.validate(hpa, KUBERNETES, strict=True)
    hpa = the(rendered["overlays/cpu-hpa"], "HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in (K8S / "components/hpa/adapter-rules.yaml").read_text()
    )


def test_the_inference_service_runs_our_container_on_kserves_terms(rendered):
    isvc = the(rendered["kserve"], "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    (c,) = isvc["spec"]["predictor"]["containers"]
    assert c["name"] == "kserve-container"  # the name KServe's controller looks for
    assert c["ports"][0]["containerPort"] == SERVER_PORT
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"  # the Open Inference Protocol's
    # The container itself is a core/v1 Container: validated as one, in a Pod.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [c]}}
    kubernetes_validate.validate(pod, KUBERNETES, strict=True)
    env = {e["name"]: e for e in c["env"]}
    assert "secretKeyRef" in env["GANSERVE_API_TOKEN"]["valueFrom"]


def test_no_manifest_holds_a_literal_secret():
    for path in K8S.rglob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"GANSERVE_API_TOKEN\s*\n\s*value:", text), path
        assert "kind: Secret" not in text, f"{path}: Secrets are created by the operator, not shipped"


def test_the_rendered_files_are_what_the_docs_name():
    docs = (REPO / "docs" / "DEPLOYMENT.md").read_text()
    for target in TARGETS:
        assert f"deploy/k8s/{target}" in docs, target
    assert Path(K8S / "base" / "kustomization.yaml").exists()
