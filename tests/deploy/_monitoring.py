"""What the monitoring checks share: the component's files, the schemas of its two custom
resources (Prometheus Operator CRDs, which kubernetes-validate has no schema for), and the
metric names a query may use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import activities.infra.metrics  # noqa: F401  (registers every sentinel_* metric)

from ._support import K8S, load_all

MONITORING = K8S / "components" / "monitoring"
DASHBOARD_FILE = MONITORING / "sentinel-dashboard.json"
RULES_FILE = MONITORING / "prometheusrule.yaml"
PODMONITOR_FILE = MONITORING / "podmonitor.yaml"

SDK_METRICS = {
    # The Temporal SDK's (temporalio 1.35, sdk-core) Prometheus names with our settings
    # (counters_total_suffix, durations in seconds), as a worker served them in a real run.
    "temporal_activity_execution_failed_total",
    "temporal_activity_execution_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_activity_succeed_endtoend_latency",
    "temporal_activity_task_received_total",
    "temporal_num_pollers",
    "temporal_request_latency",
    "temporal_request_total",
    "temporal_request_failure_total",
    "temporal_sticky_cache_size",
    "temporal_worker_start_total",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_workflow_completed_total",
    "temporal_workflow_endtoend_latency",
    "temporal_workflow_task_execution_latency",
    "temporal_workflow_task_schedule_to_start_latency",
}
PROMETHEUS_BUILTINS = {"up"}
_NAME = re.compile(r"\b((?:sentinel|temporal)_[a-z0-9_]+|up)\b")


def our_metric_names() -> set[str]:
    """Every sample name our registry exposes (``_total``, ``_bucket``, ... included)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("sentinel_"):
            continue
        base = family.name
        names.add(base)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
        }.get(family.type, ())
        names.update(base + suffix for suffix in suffixes)
    return names


def known_metric_names() -> set[str]:
    sdk = {name + suffix for name in SDK_METRICS for suffix in ("", "_bucket", "_sum", "_count")}
    return our_metric_names() | sdk | PROMETHEUS_BUILTINS


def names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (labels and functions are not matched)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_by = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    return set(_NAME.findall(without_by))


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def rules() -> dict[str, Any]:
    (doc,) = load_all(RULES_FILE)
    return doc


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


# Hand-written schemas of the fields we use (monitoring.coreos.com/v1, Prometheus Operator).
PODMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": {"type": "object"}},
                },
                "namespaceSelector": {"type": "object"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(s|m)$"},
                            "scrapeTimeout": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUSRULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "interval": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["alert", "expr", "labels", "annotations"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Z][A-Za-z]+$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": "^[0-9]+(s|m|h)$"},
                                        "labels": {
                                            "type": "object",
                                            "required": ["severity"],
                                            "properties": {
                                                "severity": {
                                                    "enum": ["critical", "warning", "info"]
                                                }
                                            },
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "required": ["summary"],
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
