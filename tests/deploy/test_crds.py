"""deploy/k8s: the custom kinds (KEDA's ScaledObject, KServe's InferenceService) validate against
the schemas their projects publish in their CRDs, vendored in tests/deploy/crds/ (its README says
where from and how to refresh). The API server checks a custom resource with rules that plain
JSON Schema lacks; `api_server_schema` turns them into JSON Schema so that jsonschema rejects what
a strict `kubectl apply` would: unknown fields, wrong types, missing required fields. No cluster
runs here and nothing is downloaded."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from jsonschema import Draft4Validator, ValidationError, validators

from tests.deploy.kustomize import K8S, render

CRDS = Path(__file__).resolve().parent / "crds"
# Every kustomization whose output holds a custom kind; a test below keeps the list complete.
CUSTOM_TARGETS = ("components/keda", "overlays/cpu", "overlays/gpu", "kserve")


# --- The manifests ---------------------------------------------------------------------------


def kustomizations() -> list[str]:
    return sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))


def is_custom(doc: dict) -> bool:
    """Built-in groups are dotless (apps, policy) or end in .k8s.io; a CRD's group is a domain."""
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def custom_docs(target: str) -> list[dict]:
    return [d for d in render(target) if is_custom(d)]


# --- The published schemas, with the API server's semantics -----------------------------------


@functools.cache
def vendored() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the vendored file: its source and the published openAPIV3Schema."""
    out = {}
    for path in sorted(CRDS.glob("*.json")):
        crd = json.loads(path.read_text())
        out[(f"{crd['group']}/{crd['version']}", crd["kind"])] = crd
    return out


# Extensions whose meaning `api_server_schema` and the validator below implement. One a refresh
# brings in that is not here stops the tests instead of being ignored.
KNOWN_EXTENSIONS = {
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",  # merge strategy only: nothing to validate
    "x-kubernetes-validations",
}


def api_server_schema(node: dict) -> dict:
    """A CRD's structural schema as JSON Schema draft 4 (whose keywords OpenAPI 3.0's follow),
    rejecting what the API server's strict field validation rejects."""
    unknown = {k for k in node if k.startswith("x-kubernetes-")} - KNOWN_EXTENSIONS
    assert not unknown, f"schema extension not implemented here: {unknown}"
    out = dict(node)
    if "properties" in node:
        out["properties"] = {name: api_server_schema(sub) for name, sub in node["properties"].items()}
        # The API server applies defaults before it validates: a field with a default is never missing.
        required = [n for n in node.get("required", ()) if "default" not in node["properties"].get(n, {})]
        out.pop("required", None)
        if required:
            out["required"] = required
    if isinstance(node.get("items"), dict):
        out["items"] = api_server_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = api_server_schema(node["additionalProperties"])
    # anyOf, allOf, oneOf and not are value checks in a structural schema, with no fields of their
    # own to convert: kept as published.
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    # A null where the schema is not nullable the API server drops silently; here it is an
    # error, as in a manifest of ours it would be a slip.
    is_object = out.get("type") == "object" or "properties" in node
    if is_object and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        # A field the schema does not name is pruned by the API server and rejected by strict
        # field validation (kubectl's default --validate=strict): a typo never reaches the controller.
        out["additionalProperties"] = False
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _unique_map_keys(validator, keys, instance, schema):
    """x-kubernetes-list-type: map: the API server rejects two items with the same keys."""
    if not validator.is_type(instance, "array"):
        return
    fields = schema.get("items", {}).get("properties", {})
    seen = set()
    for item in instance:
        if isinstance(item, dict):
            values = {k: item.get(k, fields.get(k, {}).get("default")) for k in keys}
            key = json.dumps(values, sort_keys=True)
            if key in seen:
                yield ValidationError(f"duplicate entries for {values} in a list keyed by {keys}")
            seen.add(key)


def _replicas_in_order(spec: dict) -> bool:
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    return not (isinstance(low, int) and isinstance(high, int)) or low <= high  # a wrong type is reported apart


# The CEL rules (x-kubernetes-validations) of the vendored schemas, which jsonschema cannot run,
# written out in Python. A rule not here fails where the manifest reaches it, and in a test below.
CEL_BY_HAND: dict[str, Callable[[dict], bool]] = {
    "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)": _replicas_in_order,
}


def _cel_rules(validator, rules, instance, schema):
    for rule in rules:
        check = CEL_BY_HAND.get(rule["rule"])
        if check is None:
            yield ValidationError(f"CEL rule not checked here (add it to CEL_BY_HAND): {rule['rule']}")
        elif validator.is_type(instance, "object") and not check(instance):
            yield ValidationError(rule.get("message", rule["rule"]))


KubernetesValidator = validators.extend(
    Draft4Validator, {"x-kubernetes-list-map-keys": _unique_map_keys, "x-kubernetes-validations": _cel_rules}
)

# The API server checks a custom resource's metadata as every object's ObjectMeta, not with the
# CRD's schema (which says only `type: object`): loosely here, a name and string maps.
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "labels": STRING_MAP, "annotations": STRING_MAP},
}


@functools.cache
def validator_for(api_version: str, kind: str) -> KubernetesValidator:
    schema = api_server_schema(vendored()[(api_version, kind)]["openAPIV3Schema"])
    schema["properties"]["metadata"] = OBJECT_META
    KubernetesValidator.check_schema(schema)  # the conversion made a valid draft 4 schema
    return KubernetesValidator(schema)


def where(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "(root)"


def errors(doc: dict) -> list[str]:
    found = validator_for(doc["apiVersion"], doc["kind"]).iter_errors(doc)
    return sorted(f"{where(e.absolute_path)}: {e.message}" for e in found)


# --- What is checked ---------------------------------------------------------------------------


def test_every_kustomization_with_a_custom_kind_is_checked():
    assert {t for t in kustomizations() if custom_docs(t)} == set(CUSTOM_TARGETS)


def test_every_custom_kind_rendered_has_its_published_schema_vendored():
    kinds = {(d["apiVersion"], d["kind"]) for t in CUSTOM_TARGETS for d in custom_docs(t)}
    assert kinds == set(vendored()), "vendor the CRD of a new custom kind (tests/deploy/crds/refresh.py)"


@pytest.mark.parametrize("target", CUSTOM_TARGETS)
def test_the_custom_kinds_validate_against_their_published_crds(target):
    docs = custom_docs(target)
    assert docs
    for doc in docs:
        assert errors(doc) == [], f"{target}: {doc['kind']} {doc['metadata']['name']}"


def test_the_vendored_schemas_say_where_they_came_from():
    readme = (CRDS / "README.md").read_text()
    for crd in vendored().values():
        source = crd["source"]
        assert source["repository"].startswith("https://github.com/") and source["license"] == "Apache-2.0"
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source
        assert source["commit"] in readme and source["path"] in readme, f"README.md: {crd['kind']}'s provenance"
        assert crd["openAPIV3Schema"]["properties"]["spec"]["properties"], crd["kind"]


def cel_rules(node) -> list[str]:
    if isinstance(node, dict):
        own = [r["rule"] for r in node.get("x-kubernetes-validations", ())]
        return own + [r for v in node.values() for r in cel_rules(v)]
    if isinstance(node, list):
        return [r for v in node for r in cel_rules(v)]
    return []


def test_every_cel_rule_of_the_vendored_schemas_is_checked_by_hand():
    rules = {r for crd in vendored().values() for r in cel_rules(crd["openAPIV3Schema"])}
    assert rules == set(CEL_BY_HAND)


# --- The validator catches what the API server would reject -------------------------------------


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def _trigger(doc: dict) -> dict:
    return doc["spec"]["triggers"][0]


def _container(doc: dict) -> dict:
    return doc["spec"]["predictor"]["containers"][0]


SCALED_OBJECT = ("overlays/cpu", "ScaledObject")
INFERENCE_SERVICE = ("kserve", "InferenceService")

# (which document, how it is broken, the error expected: "where: what").
BROKEN = {
    "misspelt trigger field": (
        SCALED_OBJECT,
        lambda d: _rename(_trigger(d), "metadata", "metadta"),
        "spec.triggers[0]: Additional properties are not allowed ('metadta' was unexpected)",
    ),
    "misspelt HPA behaviour field": (
        SCALED_OBJECT,
        lambda d: _rename(
            d["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"],
            "stabilizationWindowSeconds",
            "stabilisationWindowSeconds",
        ),
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown: Additional properties are not allowed",
    ),
    "replica count as a word": (
        SCALED_OBJECT,
        lambda d: d["spec"].update(minReplicaCount="two"),
        "spec.minReplicaCount: 'two' is not of type 'integer'",
    ),
    "trigger metadata not a string": (
        SCALED_OBJECT,
        lambda d: _trigger(d)["metadata"].update(threshold=8),
        "spec.triggers[0].metadata.threshold: 8 is not of type 'string'",
    ),
    "no scale target": (
        SCALED_OBJECT,
        lambda d: d["spec"].pop("scaleTargetRef"),
        "spec: 'scaleTargetRef' is a required property",
    ),
    "min replicas above max (CEL rule)": (
        SCALED_OBJECT,
        lambda d: d["spec"].update(minReplicaCount=30),
        "spec: minReplicaCount must be less than or equal to maxReplicaCount",
    ),
    "no name": (
        SCALED_OBJECT,
        lambda d: d["metadata"].pop("name"),
        "metadata: 'name' is a required property",
    ),
    "misspelt container field": (
        INFERENCE_SERVICE,
        lambda d: _rename(_container(d), "image", "imagee"),
        "spec.predictor.containers[0]: Additional properties are not allowed ('imagee' was unexpected)",
    ),
    "misspelt predictor field": (
        INFERENCE_SERVICE,
        lambda d: _rename(d["spec"]["predictor"], "minReplicas", "minReplica"),
        "spec.predictor: Additional properties are not allowed ('minReplica' was unexpected)",
    ),
    "replicas as a word": (
        INFERENCE_SERVICE,
        lambda d: d["spec"]["predictor"].update(minReplicas="two"),
        "spec.predictor.minReplicas: 'two' is not of type 'integer'",
    ),
    "container without a name": (
        INFERENCE_SERVICE,
        lambda d: _container(d).pop("name"),
        "spec.predictor.containers[0]: 'name' is a required property",
    ),
    "no predictor": (
        INFERENCE_SERVICE,
        lambda d: d["spec"].pop("predictor"),
        "spec: 'predictor' is a required property",
    ),
    "one variable set twice (list map keys)": (
        INFERENCE_SERVICE,
        lambda d: _container(d)["env"].append({"name": "GANSERVE_WORKERS", "value": "2"}),
        "spec.predictor.containers[0].env: duplicate entries for {'name': 'GANSERVE_WORKERS'}",
    ),
    "probe port neither a number nor a name (int-or-string)": (
        INFERENCE_SERVICE,
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(port=3000.5),
        "spec.predictor.containers[0].livenessProbe.httpGet.port: 3000.5 is not of type 'integer', 'string'",
    ),
    "memory not a quantity": (
        INFERENCE_SERVICE,
        lambda d: _container(d)["resources"]["limits"].update(memory="768 MB"),
        "spec.predictor.containers[0].resources.limits.memory: '768 MB' does not match",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_the_validator_rejects_what_the_api_server_would(case):
    (target, kind), mutate, expected = BROKEN[case]
    (doc,) = [d for d in render(target) if d["kind"] == kind]
    broken = copy.deepcopy(doc)
    mutate(broken)
    found = errors(broken)
    assert any(e.startswith(expected) for e in found), found


@pytest.mark.parametrize("port", [3000, "http1"])
def test_a_probe_port_may_be_a_number_or_a_name(port):
    (isvc,) = custom_docs("kserve")
    changed = copy.deepcopy(isvc)
    _container(changed)["livenessProbe"]["httpGet"]["port"] = port
    assert errors(changed) == []


# The conversion's other rules, which the vendored schemas use where our manifests do not reach.
OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "integer"}}}
NULLABLE = {"type": "object", "properties": {"a": {"type": "string", "nullable": True, "enum": ["x"]}}}
SET = {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
DEFAULTED = {"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "default": "x"}}}
EMPTY = {"type": "object"}


@pytest.mark.parametrize(
    "schema, instance, valid",
    [
        (OPEN, {"a": 1, "anything": {"else": True}}, True),  # unknown fields kept
        (OPEN, {"a": "1"}, False),  # the known ones still checked
        (NULLABLE, {"a": None}, True),
        (NULLABLE, {"a": "y"}, False),
        (SET, ["a", "b"], True),
        (SET, ["a", "a"], False),
        (DEFAULTED, {}, True),  # the API server fills it in before validating
        (EMPTY, {}, True),
        (EMPTY, {"a": 1}, False),  # no properties and not preserved: every field is unknown
    ],
)
def test_the_conversion_keeps_the_api_servers_meaning(schema, instance, valid):
    assert KubernetesValidator(api_server_schema(schema)).is_valid(instance) is valid
