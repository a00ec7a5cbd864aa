"""Operator monitoring (deploy/k8s/components/monitoring and the base's scrape settings): the
dashboard and the alert rules parse, have what an on-call engineer needs, and read only
metrics the workers really export; the scrape port is the same number everywhere."""

from __future__ import annotations

import pytest

from ._k8s import by_kind, pod_env, rendered
from ._monitoring import (
    PODMONITOR_SCHEMA,
    PROMETHEUSRULE_SCHEMA,
    dashboard,
    known_metric_names,
    names_in,
    rules,
)

try:
    import jsonschema
except ImportError as exc:  # a collection error naming the fix, never a skip
    pytest.fail(f"{exc.name} is missing: install the dev extra", pytrace=False)

RENDERED = rendered()
MONITORED = [target for target in RENDERED if target.endswith("+monitoring")]
KNOWN = known_metric_names()


def _queries() -> list[tuple[str, str]]:
    found = [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]
    found += [
        (rule["alert"], rule["expr"])
        for group in rules()["spec"]["groups"]
        for rule in group["rules"]
    ]
    return found


def test_dashboard_is_grafana_json_with_the_on_call_panels() -> None:
    board = dashboard()
    assert board["uid"] == "sentinel-training" and board["schemaVersion"] >= 36
    panels = [p for p in board["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    for needed in (
        "Running retrains by stage",
        "Seconds since the last heartbeat",
        "Activity retries per hour",
        "Approvals waiting (hours)",
        "Publish outcomes (24 h)",
        "Training images per second",
        "Checkpoint uploads",
        "GPU memory",
        "Free task slots (Temporal SDK)",
    ):
        assert needed in titles, needed
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_alerts_cover_stuck_progress_climbing_retries_and_long_approvals() -> None:
    doc = rules()
    jsonschema.validate(doc, PROMETHEUSRULE_SCHEMA)
    alerts = {r["alert"]: r for g in doc["spec"]["groups"] for r in g["rules"]}
    heartbeat = alerts["SentinelActivityNoHeartbeat"]["expr"]
    assert "sentinel_activity_last_heartbeat_timestamp_seconds" in heartbeat
    assert "sentinel_activity_retries_total" in alerts["SentinelActivityRetriesClimbing"]["expr"]
    approval = alerts["SentinelApprovalWaitingTooLong"]["expr"]
    assert "sentinel_approval_waiting_seconds" in approval and "24 * 3600" in approval


@pytest.mark.parametrize(("where", "expr"), _queries())
def test_every_query_reads_metrics_that_exist(where: str, expr: str) -> None:
    used = names_in(expr)
    assert used, f"{where}: no metric in {expr!r}"
    unknown = used - KNOWN
    assert not unknown, f"{where}: {sorted(unknown)} are exported by no worker"


@pytest.mark.parametrize("target", MONITORED)
def test_the_component_scrapes_the_workers_metrics_port(target: str) -> None:
    docs = RENDERED[target]
    (monitor,) = by_kind(docs, "PodMonitor")
    jsonschema.validate(monitor, PODMONITOR_SCHEMA)
    (rule,) = by_kind(docs, "PrometheusRule")
    jsonschema.validate(rule, PROMETHEUSRULE_SCHEMA)
    (board,) = [
        d for d in by_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]
    ]
    assert board["data"]["sentinel-dashboard.json"].strip().startswith("{")
    port_name = monitor["spec"]["podMetricsEndpoints"][0]["port"]
    selected = monitor["spec"]["selector"]["matchLabels"]
    for deployment in by_kind(docs, "Deployment"):
        assert selected.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert port_name in {p["name"] for p in container["ports"]}


@pytest.mark.parametrize("target", sorted(RENDERED))
def test_metrics_port_is_one_number_in_settings_ports_annotations_and_policy(target: str) -> None:
    docs = RENDERED[target]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    (policy,) = by_kind(docs, "NetworkPolicy")
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    for deployment in by_kind(docs, "Deployment"):
        port = int(pod_env(deployment, configmaps)["SENTINEL_METRICS_PORT"])
        assert port > 0, "metrics are on in the deployed workers"
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        (container,) = template["spec"]["containers"]
        assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
        assert allowed == {port}, "only the metrics port accepts connections"


def test_monitoring_is_optional() -> None:
    for overlay in ("dev", "prod"):
        assert not by_kind(RENDERED[overlay], "PodMonitor"), f"{overlay} must not need the operator"
