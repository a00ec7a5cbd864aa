"""Kubernetes helpers of the deploy checks: the real kustomize, pod environment lookups, KEDA.

deploy/k8s is rendered by ``kubectl kustomize`` (Kustomize v5 is built into kubectl; no cluster
is involved), exactly as ``kubectl apply -k`` would render it. A missing kubectl fails the tests
with the install command, it never skips.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ._support import K8S, K8S_BASE, K8S_COMPONENTS, K8S_OVERLAYS, K8S_SECRETS, load_all

KUBECTL_HINT = (
    "tests/deploy render deploy/k8s with the real kustomize built into kubectl: "
    "install it with `apt-get install kubectl` (`make` does so when apt-get is available)"
)
KUSTOMIZE_MIN_MAJOR = 5  # what the manifests are written and checked for (CI: v5.5.0)


# ---------------------------------------------------------------------------------------------
# The real kustomize: `kubectl kustomize DIR`.
# ---------------------------------------------------------------------------------------------
def find_kubectl() -> str:
    """Path of kubectl on PATH, or fail naming how to install it."""
    found = shutil.which("kubectl")
    if not found:
        pytest.fail(f"`kubectl` not found on PATH: {KUBECTL_HINT}", pytrace=False)
    return found


def check_kustomize_version(version: str) -> None:
    """Fail unless ``version`` (as ``kubectl version --client`` reports it) is Kustomize v5+."""
    major = version.lstrip("v").split(".", 1)[0]
    if not major.isdigit() or int(major) < KUSTOMIZE_MIN_MAJOR:
        pytest.fail(
            f"kubectl's Kustomize is {version or 'unknown'}, tests/deploy need "
            f"v{KUSTOMIZE_MIN_MAJOR}+: {KUBECTL_HINT}",
            pytrace=False,
        )


@functools.cache
def kubectl() -> str:
    """kubectl, checked once for a Kustomize v5+ built in."""
    path = find_kubectl()
    result = subprocess.run(
        [path, "version", "--client", "--output=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"`kubectl version --client` failed: {result.stderr.strip()}", pytrace=False)
    check_kustomize_version(json.loads(result.stdout).get("kustomizeVersion", ""))
    return path


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization directory (or a Component) with `kubectl kustomize`."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"`kubectl kustomize {directory}` failed:\n{result.stderr.strip()}")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert docs, f"`kubectl kustomize {directory}` rendered nothing"
    keys = [_key(d) for d in docs]
    assert len(keys) == len(set(keys)), f"{directory}: duplicate resources {keys}"
    return docs


def kustomize_with_component(overlay: str, component: str) -> list[dict[str, Any]]:
    """An overlay with a component enabled as components/*/kustomization.yaml tells users to:
    ``components: [../../components/<name>]`` in the overlay's kustomization.yaml. Rendered
    from a copy of deploy/k8s, so that the overlay's own transformers (namespace, images)
    apply to the component's objects exactly as they would in the real tree."""
    with tempfile.TemporaryDirectory(prefix="sentinel-k8s-") as tmp:
        tree = Path(tmp) / "k8s"
        shutil.copytree(K8S, tree)
        overlay_dir = tree / "overlays" / overlay
        path = overlay_dir / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        entry = os.path.relpath(tree / "components" / component, overlay_dir)
        kustomization["components"] = [*kustomization.get("components", []), entry]
        path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
        return kustomize(overlay_dir)


# What the tests render: the base, every overlay, and every overlay with each component.
COMPONENT_TARGETS = {
    f"{overlay}+{component}": (overlay, component)
    for overlay in K8S_OVERLAYS
    for component in K8S_COMPONENTS
}
TARGETS = ("base", *K8S_OVERLAYS, *COMPONENT_TARGETS)


@functools.cache
def _render(target: str) -> list[dict[str, Any]]:
    if target == "base":
        return kustomize(K8S_BASE)
    if target in COMPONENT_TARGETS:
        return kustomize_with_component(*COMPONENT_TARGETS[target])
    return kustomize(K8S / "overlays" / target)


class Rendered(Mapping[str, list[dict[str, Any]]]):
    """Target name -> rendered objects, rendered on first use: test parametrization needs only
    the names, so a missing kubectl fails each rendering test (with the hint), not collection."""

    def __getitem__(self, target: str) -> list[dict[str, Any]]:
        if target not in TARGETS:
            raise KeyError(target)
        return _render(target)

    def __iter__(self) -> Iterator[str]:
        return iter(TARGETS)

    def __len__(self) -> int:
        return len(TARGETS)


def rendered() -> Rendered:
    """The base, every overlay and every overlay+component, rendered by the real kustomize."""
    return Rendered()


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def secret_templates() -> dict[str, dict[str, Any]]:
    """Secret templates of deploy/k8s/secrets by Secret name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S_SECRETS.glob("*.yaml")):
        for doc in load_all(path):
            out[doc["metadata"]["name"]] = doc
    return out


def pod_env(workload: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The environment of a workload's first container: envFrom ConfigMaps, then env."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"{workload['metadata']['name']}: no ConfigMap {name}"
        env.update(configmaps[name].get("data", {}))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


# ---------------------------------------------------------------------------------------------
# KEDA: a CRD, so kubernetes-validate has no schema for it. A hand-written schema of the fields
# we use (from the KEDA ScaledObject CRD and the `temporal` scaler docs, KEDA >= 2.17) checks
# it, the HPA behavior block is checked with the real autoscaling/v2 schema, and the trigger is
# checked against the ConfigMap it must agree with.
# ---------------------------------------------------------------------------------------------
TEMPORAL_TRIGGER_KEYS = {
    "endpoint", "endpointFromEnv", "namespace", "taskQueue", "queueTypes", "targetQueueSize",
    "activationTargetQueueSize", "buildId", "workerDeploymentName", "workerDeploymentBuildId",
    "selectAllActive", "selectUnversioned", "apiKeyFromEnv", "minConnectTimeout", "unsafeSsl",
    "tlsServerName", "enableTLS", "includeRunningWorkflowCount", "workflowTaskQueueForCount",
}  # fmt: skip
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                **{
                    key: {"type": "integer", "minimum": 0}
                    for key in (
                        "pollingInterval",
                        "cooldownPeriod",
                        "initialCooldownPeriod",
                        "idleReplicaCount",
                        "minReplicaCount",
                        "maxReplicaCount",
                    )
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "temporal"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {"type": "object", "required": ["name"]},
                            # map[string]string in the CRD: a YAML number here is rejected.
                            "metadata": {
                                "type": "object",
                                "required": ["taskQueue"],
                                "anyOf": [
                                    {"required": ["endpoint"]},
                                    {"required": ["endpointFromEnv"]},
                                ],
                                "propertyNames": {"enum": sorted(TEMPORAL_TRIGGER_KEYS)},
                                "patternProperties": {"": {"type": "string"}},
                                "properties": {
                                    "queueTypes": {
                                        "pattern": "^(workflow|activity)(,(workflow|activity))?$"
                                    },
                                    "targetQueueSize": {"pattern": "^[1-9][0-9]*$"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
