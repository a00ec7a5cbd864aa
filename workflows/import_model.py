"""ImportModelWorkflow: register the model a team already runs as version 1, in production.

refuse a model that has versions -> assemble a fresh snapshot of the data -> read the weights'
task and classes and check them against the data -> evaluate on the test split -> export
(``.onnx`` + parity) -> publish as an imported version (no training section), production
unless the ONNX check fails or a version appeared meanwhile. The next retrain of the model
is gated against it.

Deterministic: every effect is an activity called by name (the client uploaded the file to
its content-addressed key; the request carries the key and the digest). Bad input fails fast
with a typed, non-retryable error; a cancel before publishing leaves the registry as it was.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

from workflows import retrain_steps as steps
from workflows.gate import apply_parity, import_decision

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.dataset import AssembleResult, SnapshotRef
    from activities.contracts.evaluation import EvaluateRequest, EvaluateResult
    from activities.contracts.export import ExportRequest, ExportResult
    from activities.contracts.gate import GateDecision
    from activities.contracts.model_import import ImportModelRequest, ImportModelResult
    from activities.contracts.registry import (
        ImportedFrom,
        ListVersionsRequest,
        ListVersionsResult,
        PublishRequest,
        PublishResult,
    )
    from activities.contracts.weights import (
        TRAINABLE_TASK,
        InspectWeightsRequest,
        InspectWeightsResult,
    )

R = TypeVar("R")


def import_workflow_id(model: str) -> str:
    """One import per model at a time."""
    return f"import-{model}"


def bad_input(message: str) -> ApplicationError:
    """A final failure of the import, typed like the activities' bad input."""
    return ApplicationError(message, type="BadInputError", non_retryable=True)


def check_weights_fit(inspected: InspectWeightsResult, snapshot: SnapshotRef, source: str) -> None:
    """Raise (non-retryable) unless the weights are a detector of the data's classes."""
    if inspected.task != TRAINABLE_TASK:
        raise bad_input(
            f"{source} is a {inspected.task} model: Sentinel registers and retrains "
            f"{TRAINABLE_TASK} models"
        )
    if list(inspected.class_names) != list(snapshot.class_names):
        raise bad_input(
            f"{source} was trained on classes {inspected.class_names} but the data "
            f"({snapshot.dataset}, snapshot {snapshot.key}) has {snapshot.class_names}: import "
            "it with data of the same classes, in the same order"
        )


def imported_publish_request(
    request: ImportModelRequest,
    *,
    workflow_id: str,
    run_id: str,
    created_at: datetime,
    inspected: InspectWeightsResult,
    evaluation: EvaluateResult,
    exported: ExportResult,
    decision: GateDecision,
    snapshot: SnapshotRef,
) -> PublishRequest:
    """The weights as they are, registered with their evaluation and no training section."""
    return PublishRequest(
        model=request.model,
        workflow_id=workflow_id,
        run_id=run_id,
        created_at=created_at,
        candidate=request.weights,
        export=exported,
        evaluation=evaluation,
        gate=decision,
        snapshot=snapshot,
        epochs=0,
        imported=ImportedFrom(
            file_name=request.source_file, sha256=request.weights.sha256, task=inspected.task
        ),
    )


@workflow.defn(name=names.IMPORT_MODEL_WORKFLOW)
class ImportModelWorkflow:
    """Register weights trained elsewhere as the first version of a model, in production."""

    def __init__(self) -> None:
        self._stage = "checking"

    @workflow.run
    async def run(self, request: ImportModelRequest) -> ImportModelResult:
        try:
            return await self._import(request)
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise  # canceled before publishing: nothing was registered; ends CANCELED
            failure = exc.cause if exc.cause else exc
            message = failure.message if isinstance(failure, FailureError) else str(failure)
            kind = failure.type if isinstance(failure, ApplicationError) else None
            raise ApplicationError(
                f"import of {request.model} failed while {self._stage}: {message}",
                type=kind or "ImportFailed",
                non_retryable=True,
            ) from exc

    async def _import(self, request: ImportModelRequest) -> ImportModelResult:
        cpu, gpu = request.cpu_task_queue, request.gpu_task_queue
        await self._refuse_existing(request)
        self._stage = "assembling"
        assembled = await self._call(names.ASSEMBLE_DATASET, request.dataset, AssembleResult, cpu)
        snapshot = assembled.snapshot
        self._stage = "inspecting"
        inspected = await self._call(
            names.INSPECT_WEIGHTS,
            InspectWeightsRequest(weights=request.weights),
            InspectWeightsResult,
            cpu,
        )
        check_weights_fit(inspected, snapshot, request.source_file)
        self._stage = "evaluating"
        evaluation = await self._call(
            names.EVALUATE, self._evaluate_request(request, snapshot), EvaluateResult, gpu
        )
        decision = import_decision(evaluation.candidate, evaluation.champion_version)
        self._stage = "exporting"
        exported = await self._call(
            names.EXPORT, self._export_request(request, snapshot), ExportResult, cpu
        )
        decision = apply_parity(decision, exported.parity)
        self._stage = "publishing"
        info = workflow.info()
        published = await self._publish(
            imported_publish_request(
                request,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                created_at=workflow.now(),
                inspected=inspected,
                evaluation=evaluation,
                exported=exported,
                decision=decision,
                snapshot=snapshot,
            ),
            cpu,
        )
        return ImportModelResult(
            model=request.model,
            version=published.version,
            promoted=published.promoted,
            reason=published.reason,
            production_version=published.production_version,
            map50_95=evaluation.candidate.map50_95,
            map50=evaluation.candidate.map50,
            task=inspected.task,
            class_names=list(inspected.class_names),
            snapshot_key=snapshot.key,
            dataset_counts=dict(assembled.counts),
            artifacts=dict(published.artifacts),
        )

    async def _refuse_existing(self, request: ImportModelRequest) -> None:
        """An import registers a first version: a model with versions is refused up front."""
        listing = await self._call(
            names.LIST_VERSIONS,
            ListVersionsRequest(model=request.model, limit=1),
            ListVersionsResult,
            request.cpu_task_queue,
        )
        if listing.total:
            production = listing.production_version
            raise bad_input(
                f"model {request.model!r} already has {listing.total} version(s) (production: "
                f"{'v' + str(production) if production else 'none'}): an import registers the "
                f"first version; fine-tune from a version with --base "
                f"registry:{request.model}@production, or import under another name"
            )

    @staticmethod
    def _evaluate_request(request: ImportModelRequest, snapshot: SnapshotRef) -> EvaluateRequest:
        return EvaluateRequest(
            model=request.model,
            snapshot=snapshot,
            candidate=request.weights,
            imgsz=request.imgsz,
            device=request.device,
            options=request.evaluation,
        )

    @staticmethod
    def _export_request(request: ImportModelRequest, snapshot: SnapshotRef) -> ExportRequest:
        return ExportRequest(
            weights=request.weights,
            snapshot=snapshot,
            output_prefix=f"runs/{workflow.info().workflow_id}/export",
            imgsz=request.imgsz,
            conf=request.evaluation.conf,
            iou=request.evaluation.iou,
            options=request.export,
        )

    async def _call(self, activity: str, argument: object, result_type: type[R], queue: str) -> R:
        """One activity by name, with the pipeline's timeouts and retries."""
        result: R = await workflow.execute_activity(
            activity,
            argument,
            result_type=result_type,
            task_queue=queue,
            start_to_close_timeout=_TIMEOUTS[activity][0],
            heartbeat_timeout=_TIMEOUTS[activity][1],
            retry_policy=steps.DATA_RETRY,
        )
        return result

    async def _publish(self, publish_request: PublishRequest, queue: str) -> PublishResult:
        """Publish; once started it finishes even if a cancel arrives (point of no return)."""
        publish = workflow.start_activity(
            names.PUBLISH,
            publish_request,
            result_type=PublishResult,
            task_queue=queue,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=steps.DATA_RETRY,
        )
        try:
            published: PublishResult = await asyncio.shield(publish)
        except asyncio.CancelledError:
            workflow.logger.warning("cancel arrived during publish: finishing the publish")
            published = await publish
        return published


_TIMEOUTS: dict[str, tuple[timedelta, timedelta | None]] = {
    names.LIST_VERSIONS: (timedelta(minutes=5), None),
    names.ASSEMBLE_DATASET: (timedelta(hours=2), timedelta(minutes=2)),
    names.INSPECT_WEIGHTS: (timedelta(minutes=30), None),  # one download and one load
    names.EVALUATE: (timedelta(hours=4), timedelta(minutes=5)),
    names.EXPORT: (timedelta(hours=2), timedelta(minutes=5)),
}
"""Start-to-close and heartbeat timeouts per activity (as RetrainWorkflow's stages have)."""
