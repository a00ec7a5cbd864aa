"""Kubernetes helpers of the deploy checks: a small kustomize and pod environment lookups."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ._support import K8S, K8S_BASE, K8S_OVERLAYS, K8S_SECRETS, load_all, load_one

# ---------------------------------------------------------------------------------------------
# A small kustomize: only the features deploy/k8s uses, and a loud failure for anything else.
# `kubectl kustomize deploy/k8s/overlays/prod` renders the same objects (checked by hand; CI has
# no kubectl). Strategic merge is approximated: maps merge, lists of named items merge by name,
# other lists are replaced, null deletes.
# ---------------------------------------------------------------------------------------------
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "components", "images"}
KUSTOMIZATION_KEYS |= {"patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge(base.get(key), value) if key in base else value
        return out
    named = (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    )
    if named:
        out_list = [dict(i) for i in base]
        index = {item["name"]: n for n, item in enumerate(out_list)}
        for item in patch:
            if item["name"] in index:
                out_list[index[item["name"]]] = _merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(item)
        return out_list
    return copy.deepcopy(patch)


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _set_images(doc: dict[str, Any], images: list[dict[str, str]]) -> None:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        name = re.split(r"[:@]", container["image"], maxsplit=1)[0]
        for image in images:
            if image["name"] == name:
                new_name = image.get("newName", name)
                tag = image.get("newTag")
                container["image"] = f"{new_name}:{tag}" if tag else new_name


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization directory (or Component) into its list of objects."""
    kustomization = load_one(directory / "kustomization.yaml")
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    assert not unknown, (
        f"{directory}/kustomization.yaml uses {sorted(unknown)}, which tests/deploy's renderer "
        "does not implement: extend tests/deploy/_k8s.py:kustomize"
    )
    docs: list[dict[str, Any]] = []
    for entry in [*kustomization.get("resources", []), *kustomization.get("components", [])]:
        target = (directory / entry).resolve()
        docs += kustomize(target) if target.is_dir() else load_all(target)
    for patch_entry in kustomization.get("patches", []):
        assert set(patch_entry) == {"path"}, f"{directory}: only `patches: - path:` is supported"
        for patch in load_all(directory / patch_entry["path"]):
            matches = [n for n, d in enumerate(docs) if _key(d) == _key(patch)]
            assert matches, f"{directory}: patch {_key(patch)} matches no resource"
            for n in matches:
                docs[n] = _merge(docs[n], patch)
    for doc in docs:
        _set_images(doc, kustomization.get("images", []))
        if "namespace" in kustomization and doc["kind"] not in CLUSTER_SCOPED:
            doc.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    keys = [_key(d) for d in docs]
    assert len(keys) == len(set(keys)), f"{directory}: duplicate resources {keys}"
    return docs


def rendered() -> dict[str, list[dict[str, Any]]]:
    """The base and every overlay, rendered."""
    out = {"base": kustomize(K8S_BASE)}
    for overlay in K8S_OVERLAYS:
        out[overlay] = kustomize(K8S / "overlays" / overlay)
    return out


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
