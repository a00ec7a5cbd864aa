"""How RetrainWorkflow calls its activities: retry policies, timeouts, and the requests and the
result it builds from the run's request and the results of earlier stages.

Pure functions of their arguments (no workflow API, no I/O): deterministic by construction,
so :mod:`workflows.retrain` keeps only the order of the steps and the waiting between them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts.dataset import SnapshotRef
    from activities.contracts.evaluation import EvaluateRequest, EvaluateResult, WeightsRef
    from activities.contracts.export import ExportRequest, ExportResult
    from activities.contracts.gate import GateDecision
    from activities.contracts.registry import PublishRequest, PublishResult
    from activities.contracts.retrain import RetrainRequest, RetrainResult, TrainingProgress
    from activities.contracts.tasks import PRIMARY_METRIC
    from activities.contracts.training import RegistryBase, TrainRequest, TrainResult

# Retries: transient trouble (network, a lost worker) is retried with backoff; our
# non-retryable errors (bad input, configuration, integrity) end the run at once.
DATA_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
)
TRAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,  # each attempt resumes from the last verified checkpoint
)
NOTIFY_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))


def stage_heartbeat(request: RetrainRequest, *, minutes: float) -> timedelta:
    """Heartbeat timeout of a non-training stage: the request's override, else ``minutes``."""
    seconds = request.stage_heartbeat_timeout_seconds
    return timedelta(seconds=seconds) if seconds is not None else timedelta(minutes=minutes)


def train_request(request: RetrainRequest, snapshot: SnapshotRef) -> TrainRequest:
    return TrainRequest(
        snapshot=snapshot,
        model_name=request.model_name,
        base=request.base,
        hyperparameters=request.hyperparameters,
        heartbeat_timeout_seconds=request.train_heartbeat_timeout_seconds,
    )


def training_done(trained: TrainResult) -> TrainingProgress:
    """The training's final progress: epochs done, final metrics, attempt and resume."""
    return TrainingProgress(
        epoch=trained.epochs_done,
        epochs=trained.epochs_requested,
        metrics={"map50": trained.metrics.map50, "map50_95": trained.metrics.map50_95},
        attempt=trained.attempt,
        resumed_from_epoch=trained.resumed_from_epoch,
    )


def candidate_of(trained: TrainResult) -> WeightsRef:
    """The trained candidate: ``best.pt`` and its sha256."""
    return WeightsRef(bucket=trained.bucket, key=trained.best_key, sha256=trained.best_sha256)


def evaluate_request(
    request: RetrainRequest, snapshot: SnapshotRef, candidate: WeightsRef
) -> EvaluateRequest:
    """Candidate vs production on the snapshot's test split, as the request's options say."""
    return EvaluateRequest(
        model=request.model_name,
        snapshot=snapshot,
        candidate=candidate,
        imgsz=request.hyperparameters.imgsz,
        device=request.hyperparameters.device,
        options=request.evaluation,
    )


def export_request(
    request: RetrainRequest, snapshot: SnapshotRef, candidate: WeightsRef, workflow_id: str
) -> ExportRequest:
    """ONNX export of the candidate; parity measured with the evaluation's conf and iou."""
    return ExportRequest(
        weights=candidate,
        snapshot=snapshot,
        output_prefix=f"runs/{workflow_id}/export",
        imgsz=request.hyperparameters.imgsz,
        conf=request.evaluation.conf,
        iou=request.evaluation.iou,
        options=request.export,
    )


def hyperparameters_record(request: RetrainRequest) -> dict[str, str | int | float | bool | None]:
    """The hyperparameters as recorded in the version's metadata (scalar ``extra`` values)."""
    record: dict[str, str | int | float | bool | None] = {}
    for key, value in request.hyperparameters.model_dump(exclude={"extra"}).items():
        record[key] = value
    for key, value in request.hyperparameters.extra.items():
        if value is None or isinstance(value, str | int | float | bool):
            record[f"extra.{key}"] = value
    return record


def publish_request(
    request: RetrainRequest,
    *,
    workflow_id: str,
    run_id: str,
    created_at: datetime,
    trained: TrainResult,
    evaluation: EvaluateResult,
    exported: ExportResult,
    decision: GateDecision,
    snapshot: SnapshotRef,
) -> PublishRequest:
    """Register this run's candidate with the final decision (ONNX parity applied)."""
    parent = None
    base = request.base
    if (
        isinstance(base, RegistryBase)
        and base.model == request.model_name  # another model's version is no parent
        and base.version.removeprefix("v").isdigit()
    ):
        parent = int(base.version.removeprefix("v"))
    return PublishRequest(
        model=request.model_name,
        workflow_id=workflow_id,
        run_id=run_id,
        created_at=created_at,
        candidate=candidate_of(trained),
        export=exported,
        evaluation=evaluation,
        gate=decision,
        snapshot=snapshot,
        parent_version=parent,
        hyperparameters=hyperparameters_record(request),
        epochs=trained.epochs_done,
        resumed_from_epoch=trained.resumed_from_epoch,
        results_csv_key=trained.results_csv_key,
        base=trained.base,
    )


def retrain_result(
    request: RetrainRequest,
    *,
    published: PublishResult,
    evaluation: EvaluateResult,
    trained: TrainResult,
    snapshot: SnapshotRef,
    counts: dict[str, int],
    duration_seconds: float,
) -> RetrainResult:
    """What the run returns: the published version, the numbers it was decided on."""
    return RetrainResult(
        model_name=request.model_name,
        version=published.version,
        promoted=published.promoted,
        reason=published.reason,
        production_version=published.production_version,
        candidate_map50_95=evaluation.candidate.map50_95,
        champion_map50_95=evaluation.champion.map50_95 if evaluation.champion else None,
        task=snapshot.task,
        metric=request.gate.metric or PRIMARY_METRIC[snapshot.task],
        candidate_score=evaluation.candidate.score(request.gate.metric),
        champion_score=evaluation.champion.score(request.gate.metric)
        if evaluation.champion
        else None,
        champion_version=evaluation.champion_version,
        epochs_done=trained.epochs_done,
        stopped_early=trained.stopped_early,
        snapshot_key=snapshot.key,
        dataset_counts=counts,
        artifacts=dict(published.artifacts),
        duration_seconds=duration_seconds,
    )
