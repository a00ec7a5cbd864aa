"""Kubernetes manifests (deploy/k8s): schemas, security posture, GPU scheduling, shutdown."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from workers.wiring import parse_queues

from ._k8s import (
    COMPONENT_TARGETS,
    SCALED_OBJECT_SCHEMA,
    by_kind,
    check_kustomize_version,
    find_kubectl,
    kustomize,
    pod_env,
    rendered,
    secret_templates,
)
from ._monitoring import PODMONITOR_SCHEMA, PROMETHEUSRULE_SCHEMA
from ._support import (
    APP_LABEL,
    HEARTBEAT_TIMEOUT_BUDGET_S,
    IMAGE_NAME,
    INSTALL_HINT,
    K8S,
    K8S_BASE,
    K8S_COMPONENTS,
    K8S_MIN_VERSION,
    K8S_OVERLAYS,
    KEDA_COMPONENT,
    SHUTDOWN_MARGIN_S,
    load_all,
)

try:
    import jsonschema
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version
except ImportError as exc:  # a collection error naming the fix, never a skip
    pytest.fail(f"{exc.name} is missing: {INSTALL_HINT}", pytrace=False)

RENDERED = rendered()
TARGETS = sorted(RENDERED)
OVERLAY_TARGETS = [t for t in TARGETS if t != "base"]
KEDA_TARGETS = [t for t, (_, component) in COMPONENT_TARGETS.items() if component == "keda"]
# Custom resources (no schema in kubernetes-validate) that components may add, and the
# hand-written schema that checks them instead.
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT_SCHEMA,
    ("monitoring.coreos.com/v1", "PodMonitor"): PODMONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUSRULE_SCHEMA,
}
CHECK_COMMAND = ["python", "-m", "workers", "--check"]


def _configmaps(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}


def _deployment(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith(kind)]
    return found


def _validate(doc: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(
            f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {path}: {exc.message}"
        )
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{exc.message}: only built-in kinds belong in base/overlays")


@pytest.mark.parametrize("version", [K8S_MIN_VERSION, latest_version()])
@pytest.mark.parametrize("target", TARGETS)
def test_rendered_manifests_validate_against_kubernetes_schemas(target: str, version: str):
    """Strict: unknown fields (typos) fail too, not only wrong types. Only a component may add
    a custom resource, and that one is checked with its hand-written schema."""
    kinds = {d["kind"] for d in RENDERED[target]}
    assert {"Namespace", "ServiceAccount", "ConfigMap", "Deployment"} <= kinds
    assert {"PodDisruptionBudget", "NetworkPolicy"} <= kinds
    for doc in RENDERED[target]:
        crd_schema = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if target in COMPONENT_TARGETS and crd_schema:
            jsonschema.validate(doc, crd_schema)
        else:
            _validate(doc, version)


def test_secret_templates_validate_and_are_not_applied_by_kustomize():
    templates = secret_templates()
    assert set(templates) == {
        "sentinel-s3-credentials",
        "sentinel-signing-keys",
        "sentinel-s3-gpu",
        "sentinel-webhook",
        "sentinel-temporal-tls",
        "sentinel-temporal-api-key",
    }
    for doc in templates.values():
        _validate(doc, latest_version())
        assert doc["metadata"]["namespace"] == "sentinel"
    for target, docs in RENDERED.items():
        assert not by_kind(docs, "Secret"), f"{target}: `apply -k` would overwrite real Secrets"


@pytest.mark.parametrize("target", TARGETS)
def test_everything_carries_the_app_label(target: str):
    for doc in RENDERED[target]:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert doc["metadata"].get("labels", {}).get(APP_LABEL[0]) == APP_LABEL[1], name
        if doc["kind"] == "Deployment":
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert pod_labels.get(APP_LABEL[0]) == APP_LABEL[1], name
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels.items(), f"{name}: selector misses its pods"
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "sentinel", name


@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_non_root_read_only_and_without_api_access(target: str):
    docs = RENDERED[target]
    (account,) = by_kind(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    rbac = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert not [d for d in docs if d["kind"] in rbac], "workers need no Kubernetes API access"
    (namespace,) = by_kind(docs, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for deployment in by_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
        assert pod["securityContext"]["fsGroup"] == 10001
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert [c["name"] for c in pod["containers"]] == ["worker"], "one container, `worker`"
        assert pod["containers"][0]["image"], "an image for every container"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            env = pod_env(deployment, _configmaps(docs))
            # Writable places with a read-only root: /tmp and the cache dir, as emptyDirs.
            for path in ("/tmp", env["SENTINEL_CACHE_DIR"]):
                assert path in mounts, f"{deployment['metadata']['name']}: {path} not mounted"
                assert "emptyDir" in volumes[mounts[path]]
            assert "livenessProbe" not in container, "liveness would kill trainings on outages"
            assert container["readinessProbe"]["exec"]["command"] == CHECK_COMMAND


@pytest.mark.parametrize("target", TARGETS)
def test_gpu_workers_get_a_gpu_node_and_cpu_workers_do_not(target: str):
    gpu = _deployment(RENDERED[target], "gpu")
    cpu = _deployment(RENDERED[target], "cpu")
    gpu_pod, cpu_pod = gpu["spec"]["template"]["spec"], cpu["spec"]["template"]["spec"]
    gpu_container = gpu_pod["containers"][0]
    assert int(gpu_container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert gpu_pod["nodeSelector"], "GPU pods need a node selector"
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])
    shm = [v for v in gpu_pod["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
    assert shm and any(m["mountPath"] == "/dev/shm" for m in gpu_container["volumeMounts"])
    cpu_resources = cpu_pod["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in {**cpu_resources.get("limits", {}), **cpu_resources["requests"]}
    assert "nodeSelector" not in cpu_pod
    configmaps = _configmaps(RENDERED[target])
    assert parse_queues(pod_env(gpu, configmaps)["SENTINEL_WORKER_QUEUES"]) == ("gpu",)
    assert parse_queues(pod_env(cpu, configmaps)["SENTINEL_WORKER_QUEUES"]) == ("cpu",)


@pytest.mark.parametrize("target", TARGETS)
def test_grace_period_covers_graceful_shutdown_and_heartbeat_timeout(target: str):
    """SIGTERM -> the worker stops polling and gives activities SENTINEL_GRACEFUL_SHUTDOWN_SECONDS;
    the kubelet must not SIGKILL before that (plus a margin), nor before a heartbeat timeout."""
    configmaps = _configmaps(RENDERED[target])
    for deployment in by_kind(RENDERED[target], "Deployment"):
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        shutdown = float(pod_env(deployment, configmaps)["SENTINEL_GRACEFUL_SHUTDOWN_SECONDS"])
        name = deployment["metadata"]["name"]
        assert grace >= HEARTBEAT_TIMEOUT_BUDGET_S, name
        assert shutdown + SHUTDOWN_MARGIN_S <= grace, (
            f"{name}: {shutdown}s shutdown, {grace}s grace"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_disruption_budgets_cover_each_worker_one_at_a_time(target: str):
    docs = RENDERED[target]
    budgets = by_kind(docs, "PodDisruptionBudget")
    for deployment in by_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in covering[0]["spec"], "minAvailable can block drains"


@pytest.mark.parametrize("target", TARGETS)
def test_network_policy_allows_only_dns_temporal_and_s3_out_and_metrics_in(target: str):
    docs = RENDERED[target]
    (policy,) = by_kind(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == dict([APP_LABEL])
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    env = pod_env(_deployment(docs, "cpu"), _configmaps(docs))
    # Only Prometheus connects to a worker, only on the metrics port, from one namespace.
    (scrape,) = spec["ingress"]
    assert scrape["ports"] == [{"protocol": "TCP", "port": int(env["SENTINEL_METRICS_PORT"])}]
    assert all("ipBlock" not in peer and "namespaceSelector" in peer for peer in scrape["from"])
    ports = sorted((p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"])
    temporal_port = int(env["SENTINEL_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    s3_port = int(env["SENTINEL_S3_ENDPOINT"].rsplit(":", 1)[1])
    assert ports == sorted([("TCP", 53), ("UDP", 53), ("TCP", temporal_port), ("TCP", s3_port)])
    for rule in spec["egress"]:
        assert all("ipBlock" not in peer for peer in rule["to"]), "no open CIDR egress in base"
    # Namespaces named by the selectors are the ones the addresses point into.
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in spec["egress"]
        for peer in rule["to"]
    }
    for address in (env["SENTINEL_TEMPORAL_ADDRESS"], env["SENTINEL_S3_ENDPOINT"]):
        assert address.split(":")[0].split(".")[1] in namespaces, address


@pytest.mark.parametrize("target", OVERLAY_TARGETS)
def test_overlays_set_the_sentinel_training_images(target: str):
    for kind in ("cpu", "gpu"):
        image = _deployment(RENDERED[target], kind)["spec"]["template"]["spec"]["containers"][0]
        repository, _, tag = image["image"].rpartition(":")
        assert repository.rsplit("/", 1)[-1] == IMAGE_NAME, image["image"]
        assert tag.endswith(f"-{kind}"), f"the {kind} worker must run the {kind} image"


# KEDA's ScaledObject is a CRD: kubernetes-validate has no schema for it (see _k8s.py).
# Checked as users enable it: the component added to an overlay (dev+keda, prod+keda).
@pytest.mark.parametrize("rendered_target", KEDA_TARGETS)
def test_keda_scaled_objects_match_schema_and_worker_settings(rendered_target: str):
    component = kustomize(KEDA_COMPONENT)
    assert {o["kind"] for o in component} == {"ScaledObject"}
    docs = RENDERED[rendered_target]
    objects = by_kind(docs, "ScaledObject")
    names = sorted(o["metadata"]["name"] for o in objects)
    assert names == sorted(o["metadata"]["name"] for o in component), rendered_target
    env = pod_env(_deployment(docs, "cpu"), _configmaps(docs))
    targets = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    queue_of = {"cpu": env["SENTINEL_CPU_TASK_QUEUE"], "gpu": env["SENTINEL_GPU_TASK_QUEUE"]}
    for scaled in objects:
        jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
        spec = scaled["spec"]
        target = spec["scaleTargetRef"]["name"]
        assert target in targets, f"{scaled['metadata']['name']}: no Deployment {target}"
        # KEDA scales a target of the ScaledObject's own namespace only.
        namespace = scaled["metadata"].get("namespace")
        assert namespace == targets[target]["metadata"]["namespace"], (
            f"{rendered_target}: ScaledObject {scaled['metadata']['name']} in namespace "
            f"{namespace!r}, its Deployment in {targets[target]['metadata']['namespace']!r}"
        )
        kind = target.rsplit("-", 1)[-1]
        assert spec["minReplicaCount"] >= 1, "backlog misses running tasks: never scale to 0"
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior:
            hpa = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": target},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": target,
                    },
                    "maxReplicas": spec["maxReplicaCount"],
                    "behavior": copy.deepcopy(behavior),
                },
            }
            _validate(hpa, latest_version())
        for trigger in spec["triggers"]:
            metadata = trigger["metadata"]
            assert metadata["endpoint"] == env["SENTINEL_TEMPORAL_ADDRESS"]
            assert metadata["namespace"] == env["SENTINEL_TEMPORAL_NAMESPACE"]
            assert metadata["taskQueue"] == queue_of[kind]
        if kind == "gpu":
            assert spec["triggers"][0]["metadata"]["queueTypes"] == "activity"


def test_keda_is_optional():
    for overlay in ("dev", "prod"):
        assert not by_kind(RENDERED[overlay], "ScaledObject"), f"{overlay} must not need KEDA"
    for path in (K8S / "overlays").rglob("kustomization.yaml"):
        assert "components" not in load_all(path)[0], f"{path}: KEDA is opt-in"


def test_every_kustomization_is_rendered():
    """base, overlays/* and components/* (each with every overlay) are all the kustomizations:
    one elsewhere would escape the checks above."""
    found = {p.parent for p in K8S.rglob("kustomization.y*ml")}
    overlays = {K8S / "overlays" / o for o in K8S_OVERLAYS}
    components = {K8S / "components" / c for c in K8S_COMPONENTS}
    assert found == {K8S_BASE} | overlays | components
    for directory in components:
        assert load_all(directory / "kustomization.yaml")[0]["kind"] == "Component", directory
    for directory in {K8S_BASE} | overlays:
        assert load_all(directory / "kustomization.yaml")[0]["kind"] == "Kustomization", directory


def test_a_missing_kubectl_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="apt-get install kubectl"):
        find_kubectl()


@pytest.mark.parametrize("version", ["v4.5.7", "v3.8.7", ""])
def test_an_old_kustomize_fails_with_the_install_command(version: str):
    with pytest.raises(pytest.fail.Exception, match="apt-get install kubectl"):
        check_kustomize_version(version)
    check_kustomize_version("v5.5.0")
