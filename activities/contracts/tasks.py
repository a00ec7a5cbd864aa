"""The Ultralytics tasks Sentinel trains, and what each one is judged on.

A task is a property of the dataset: the assembly request names it (``AssembleRequest.task``,
default ``detect``), the snapshot records it (:class:`~activities.contracts.dataset.SnapshotRef`
``task``), and every later stage (train, evaluate, export, publish) reads it from there, so no
workflow code decides anything per task.

Metric names (keys of ``ModelMetrics.scores``): ``box_map50``/``box_map50_95`` (every mAP task;
for ``obb`` the boxes are the rotated ones), ``mask_*`` (segment), ``pose_*`` (pose, OKS),
``top1``/``top5`` (classify). The gate judges the task's primary metric
(:data:`PRIMARY_METRIC`) unless the gate policy names another one of the task's metrics.
"""

from __future__ import annotations

from typing import Literal

Task = Literal["detect", "segment", "pose", "obb", "classify"]
TASKS: tuple[Task, ...] = ("detect", "segment", "pose", "obb", "classify")

PRIMARY_METRIC: dict[str, str] = {
    "detect": "box_map50_95",
    "segment": "mask_map50_95",
    "pose": "pose_map50_95",
    "obb": "box_map50_95",
    "classify": "top1",
}
"""The metric a task is gated on by default."""

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "detect": ("box_map50", "box_map50_95"),
    "segment": ("box_map50", "box_map50_95", "mask_map50", "mask_map50_95"),
    "pose": ("box_map50", "box_map50_95", "pose_map50", "pose_map50_95"),
    "obb": ("box_map50", "box_map50_95"),
    "classify": ("top1", "top5"),
}
"""Every metric measured for a task (recorded in ``ModelMetrics.scores``)."""

METRIC_LABELS: dict[str, str] = {
    "box_map50": "box mAP50",
    "box_map50_95": "box mAP50-95",
    "mask_map50": "mask mAP50",
    "mask_map50_95": "mask mAP50-95",
    "pose_map50": "pose mAP50",
    "pose_map50_95": "pose mAP50-95",
    "top1": "top-1 accuracy",
    "top5": "top-5 accuracy",
}

ARCHITECTURES: dict[str, str] = {
    "detect": "yolov8n.yaml",
    "segment": "yolov8n-seg.yaml",
    "pose": "yolov8n-pose.yaml",
    "obb": "yolov8n-obb.yaml",
    "classify": "yolov8n-cls.yaml",
}
"""The from-scratch architecture of each task (a request without a base for a non-detect task
starts here when the deployment's default base is of another task)."""


def metric_label(task: str, metric: str | None) -> str:
    """How reasons and reports name ``metric`` (None: the task's primary metric)."""
    name = metric or PRIMARY_METRIC.get(task, "box_map50_95")
    if task == "obb" and name.startswith("box_"):
        return METRIC_LABELS[name].replace("box", "OBB")
    return METRIC_LABELS.get(name, name)
