"""Contracts of RetrainWorkflow: the request, the live progress, the result."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from activities.contracts.bases import BaseModelSpec
from activities.contracts.common import Contract, ModelName
from activities.contracts.dataset import AssembleRequest
from activities.contracts.evaluation import EvaluationOptions
from activities.contracts.export import ExportOptions
from activities.contracts.gate import GateDecision, GatePolicy
from activities.contracts.tasks import TASK_METRICS
from activities.contracts.training import Hyperparameters

__all__ = [
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalState",
    "EvaluationOptions",  # defined with the evaluate activity's contracts
    "ExportOptions",  # defined with the export activity's contracts
    "Progress",
    "RetrainRequest",
    "RetrainResult",
    "Stage",
    "TrainingProgress",
]

Stage = Literal[
    "queued", "assembling", "training", "evaluating", "awaiting_approval", "exporting",
    "publishing", "notifying", "succeeded", "failed", "canceled",
]  # fmt: skip

ApprovalState = Literal["not_required", "pending", "approved", "rejected", "timed_out"]


class ApprovalPolicy(Contract):
    """Whether a human must approve before production moves, and what a timeout means."""

    required: bool = False
    timeout_seconds: float = Field(7 * 24 * 3600, gt=0)
    on_timeout: Literal["reject", "approve"] = "reject"


class RetrainRequest(Contract):
    """Everything one retrain needs. No secrets: credentials come from the workers' settings."""

    model_name: ModelName
    dataset: AssembleRequest
    base: BaseModelSpec | None = Field(
        None,
        description="starting weights; None: the workers' default (SENTINEL_DEFAULT_BASE, "
        "else yolov8n.yaml)",
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    evaluation: EvaluationOptions = Field(default_factory=EvaluationOptions)
    gate: GatePolicy = Field(default_factory=GatePolicy)
    export: ExportOptions = Field(default_factory=ExportOptions)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    train_heartbeat_timeout_seconds: float = Field(60.0, ge=5, le=3600)
    stage_heartbeat_timeout_seconds: float | None = Field(
        None,
        ge=5,
        le=3600,
        description="heartbeat timeout of assemble/evaluate/export/publish (None: 2-5 min)",
    )
    train_timeout_hours: float = Field(72.0, gt=0, le=24 * 30)
    cpu_task_queue: str = "sentinel-cpu"
    gpu_task_queue: str = "sentinel-gpu"

    @model_validator(mode="after")
    def _metric_of_the_task(self) -> RetrainRequest:
        task, metric = self.dataset.task, self.gate.metric
        if metric is not None and metric not in TASK_METRICS[task]:
            raise ValueError(
                f"gate.metric {metric!r} is not measured for a {task} model: use one of "
                f"{', '.join(TASK_METRICS[task])} (or null for the task's primary metric)"
            )
        return self


class TrainingProgress(Contract):
    """Sent by the training activity to its workflow now and then (signal): at most one per
    10% of the epochs and per minute, so that a run's history stays about its stages; live
    per-epoch progress is read from the training's heartbeat by the client."""

    epoch: int = Field(ge=0)
    epochs: int = Field(ge=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    attempt: int = 1
    resumed_from_epoch: int | None = Field(None, description="epochs in the resumed checkpoint")
    tracking: str | None = Field(
        None, description="MLflow records not sent yet or lost (None: all sent or tracking off)"
    )


class ApprovalDecision(Contract):
    """An approve or reject from a person (update argument)."""

    by: str = Field("unknown", max_length=200)
    comment: str = Field("", max_length=2000)


class Progress(Contract):
    """Answer of the ``progress`` query: cheap, always available."""

    model_name: str
    stage: Stage
    epoch: int = 0
    epochs: int = 0
    metrics: dict[str, float] = Field(default_factory=dict)
    dataset_counts: dict[str, int] = Field(default_factory=dict)
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    candidate_version: int | None = None
    decision: GateDecision | None = None
    approval: ApprovalState = "not_required"
    approval_requested_at: datetime | None = Field(
        None, description="when the run started waiting for approval (alerting on long waits)"
    )
    stop_early_requested: bool = False
    error: str | None = None
    attempt: int = Field(1, description="training attempt (> 1: resumed after a failure)")
    resumed_from_epoch: int | None = None
    live: bool = Field(
        False, description="epoch and metrics come from the training's latest heartbeat"
    )
    tracking: str | None = Field(
        None, description="experiment tracking trouble reported by training (None: none)"
    )


class RetrainResult(Contract):
    """How the retrain ended (a CANCELED or FAILED workflow has no result)."""

    model_name: str
    version: int
    promoted: bool
    reason: str
    production_version: int | None
    candidate_map50_95: float
    champion_map50_95: float | None
    task: str = Field("detect", description="the dataset's task (activities/contracts/tasks.py)")
    metric: str | None = Field(None, description="the metric gated on, when not detect's mAP")
    candidate_score: float | None = Field(None, description="the candidate's gated score")
    champion_score: float | None = Field(None, description="the champion's gated score")
    champion_version: int | None
    epochs_done: int
    stopped_early: bool
    snapshot_key: str
    dataset_counts: dict[str, int]
    artifacts: dict[str, str] = Field(description="artifact name -> object key")
    duration_seconds: float
