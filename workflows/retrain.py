"""RetrainWorkflow: assemble -> train -> evaluate -> gate -> (approval) -> export -> publish.

Deterministic and side-effect free: every effect is an activity called by name, on the CPU or
GPU task queue named in the request. Bad input fails the run fast (non-retryable errors keep
their type and message); a cancel stops training, publishes nothing and leaves production as
it was; ``stop_early`` ends training after the current epoch and the pipeline goes on.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.dataset import AssembleResult, SnapshotRef
    from activities.contracts.evaluation import EvaluateRequest, EvaluateResult, WeightsRef
    from activities.contracts.export import ExportRequest, ExportResult
    from activities.contracts.gate import GateDecision
    from activities.contracts.notify import NotifyRequest
    from activities.contracts.registry import PublishRequest, PublishResult
    from activities.contracts.retrain import (
        ApprovalDecision,
        Progress,
        RetrainRequest,
        RetrainResult,
        Stage,
        TrainingProgress,
    )
    from activities.contracts.training import (
        RegistryBase,
        TrainRequest,
        TrainResult,
        WriteControlRequest,
    )
    from workflows.gate import apply_parity, decide

ARTIFACT_NAMES = ("model.pt", "model.onnx", "metadata.json", "results.csv", "report.md")

# Retries: transient trouble (network, a lost worker) is retried with backoff; our
# non-retryable errors (bad input, configuration, integrity) end the run at once.
_DATA_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
)
_TRAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,  # each attempt resumes from the last verified checkpoint
)
_NOTIFY_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))


def _stage_heartbeat(request: RetrainRequest, *, minutes: float) -> timedelta:
    """Heartbeat timeout of a non-training stage: the request's override, else ``minutes``."""
    seconds = request.stage_heartbeat_timeout_seconds
    return timedelta(seconds=seconds) if seconds is not None else timedelta(minutes=minutes)


def workflow_id_for(model_name: str) -> str:
    """One retrain per model: this id makes Temporal refuse a second concurrent start."""
    return f"retrain-{model_name}"


def _hyperparameters_record(request: RetrainRequest) -> dict[str, str | int | float | bool | None]:
    record: dict[str, str | int | float | bool | None] = {}
    for key, value in request.hyperparameters.model_dump(exclude={"extra"}).items():
        record[key] = value
    for key, value in request.hyperparameters.extra.items():
        if value is None or isinstance(value, str | int | float | bool):
            record[f"extra.{key}"] = value
    return record


@workflow.defn(name=names.RETRAIN_WORKFLOW)
class RetrainWorkflow:
    """One retrain of one model, durable across worker and server restarts."""

    def __init__(self) -> None:
        self._request: RetrainRequest | None = None
        self._stage: Stage = "queued"
        self._training = TrainingProgress(epoch=0, epochs=1)
        self._training_started: float | None = None
        self._training_started_epoch = 0
        self._counts: dict[str, int] = {}
        self._decision: GateDecision | None = None
        self._version: int | None = None
        self._approval: str = "not_required"
        self._approval_note: ApprovalDecision | None = None
        self._stop_early = False
        self._stop_sent = False
        self._error: str | None = None
        self._epochs = 0
        self._canceled_during_publish = False

    # ------------------------------------------------------------------ handlers
    @workflow.query
    def progress(self) -> Progress:
        """Stage, epoch / total, latest metrics, dataset counts, timing, decision."""
        now = workflow.time()
        elapsed = now - workflow.info().start_time.timestamp()
        return Progress(
            model_name=self._request.model_name if self._request else "",
            stage=self._stage,
            epoch=self._training.epoch,
            epochs=self._epochs,
            metrics=self._training.metrics,
            dataset_counts=self._counts,
            elapsed_seconds=max(0.0, elapsed),
            eta_seconds=self._eta(now),
            candidate_version=self._version,
            decision=self._decision,
            approval=self._approval,  # type: ignore[arg-type]
            stop_early_requested=self._stop_early,
            error=self._error,
        )

    def _eta(self, now: float) -> float | None:
        if self._stage != "training" or self._training_started is None:
            return None
        done = self._training.epoch - self._training_started_epoch
        if done <= 0:
            return None
        per_epoch = (now - self._training_started) / done
        return per_epoch * max(0, self._epochs - self._training.epoch)

    @workflow.signal
    def training_progress(self, update: TrainingProgress) -> None:
        """Sent by the training activity at each epoch end."""
        if self._training_started is None or update.attempt != self._training.attempt:
            # A new attempt (resume): measure its pace from here.
            self._training_started = workflow.time()
            self._training_started_epoch = max(0, update.epoch - 1)
        self._training = update

    @workflow.signal
    def stop_early(self) -> None:
        """Finish training after the current epoch and continue with the best weights."""
        self._stop_early = True

    @workflow.update
    async def approve(self, decision: ApprovalDecision) -> str:
        """Approve moving the production alias (only while awaiting approval)."""
        self._approval, self._approval_note = "approved", decision
        return f"approved by {decision.by}"

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._require_pending("approve")

    @workflow.update
    async def reject(self, decision: ApprovalDecision) -> str:
        """Reject: the version is registered but production does not move."""
        self._approval, self._approval_note = "rejected", decision
        return f"rejected by {decision.by}"

    @reject.validator
    def _validate_reject(self, decision: ApprovalDecision) -> None:
        self._require_pending("reject")

    def _require_pending(self, verb: str) -> None:
        if self._approval != "pending":
            raise ValueError(
                f"cannot {verb}: the run is {self._stage}, approval is {self._approval}"
            )

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, request: RetrainRequest) -> RetrainResult:
        self._request = request
        self._epochs = request.hyperparameters.epochs
        try:
            return await self._pipeline(request)
        except (asyncio.CancelledError, FailureError) as exc:
            if is_cancelled_exception(exc):
                # Nothing was published; production is untouched. Tell people, then end
                # CANCELED by re-raising.
                self._stage, self._error = "canceled", "canceled"
                await self._notify("canceled", reason="canceled")
                raise
            failure = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
            message = failure.message if isinstance(failure, FailureError) else str(failure)
            stage = self._stage
            self._stage, self._error = "failed", f"{stage}: {message}"
            await self._notify("failed", reason=self._error)
            kind = failure.type if isinstance(failure, ApplicationError) else None
            raise ApplicationError(
                f"retrain of {request.model_name} failed while {stage}: {message}",
                type=kind or "RetrainFailed",
                non_retryable=True,
            ) from exc

    async def _pipeline(self, request: RetrainRequest) -> RetrainResult:
        wf_id = workflow.info().workflow_id
        cpu, gpu = request.cpu_task_queue, request.gpu_task_queue

        self._stage = "assembling"
        assembled: AssembleResult = await workflow.execute_activity(
            names.ASSEMBLE_DATASET,
            request.dataset,
            result_type=AssembleResult,
            task_queue=cpu,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=_stage_heartbeat(request, minutes=2),
            retry_policy=_DATA_RETRY,
        )
        self._counts = dict(assembled.counts)
        snapshot = assembled.snapshot

        self._stage = "training"
        trained = await self._train(request, snapshot, gpu, cpu)
        candidate = WeightsRef(
            bucket=trained.bucket, key=trained.best_key, sha256=trained.best_sha256
        )

        self._stage = "evaluating"
        options = request.evaluation
        evaluation: EvaluateResult = await workflow.execute_activity(
            names.EVALUATE,
            EvaluateRequest(
                model=request.model_name,
                snapshot=snapshot,
                candidate=candidate,
                imgsz=request.hyperparameters.imgsz,
                conf=options.conf,
                iou=options.iou,
                device=request.hyperparameters.device,
                bootstrap_resamples=options.bootstrap_resamples,
                bootstrap_seed=options.bootstrap_seed,
                ci_level=options.ci_level,
                skip_comparison_on_class_mismatch=options.skip_comparison_on_class_mismatch,
            ),
            result_type=EvaluateResult,
            task_queue=gpu,
            start_to_close_timeout=timedelta(hours=4),
            heartbeat_timeout=_stage_heartbeat(request, minutes=5),
            retry_policy=_DATA_RETRY,
        )
        decision = decide(
            evaluation.candidate,
            evaluation.champion,
            evaluation.ci,
            request.gate,
            champion_version=evaluation.champion_version,
        )
        self._decision = decision
        decision = await self._approval_step(request, decision)
        self._decision = decision

        self._stage = "exporting"
        exported: ExportResult = await workflow.execute_activity(
            names.EXPORT,
            ExportRequest(
                weights=candidate,
                snapshot=snapshot,
                output_prefix=f"runs/{wf_id}/export",
                imgsz=request.hyperparameters.imgsz,
                opset=request.export.opset,
                dynamic=request.export.dynamic,
                simplify=request.export.simplify,
                conf=options.conf,
                iou=options.iou,
                output_tolerance=request.export.output_tolerance,
                map_tolerance=request.export.map_tolerance,
            ),
            result_type=ExportResult,
            task_queue=cpu,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=_stage_heartbeat(request, minutes=5),
            retry_policy=_DATA_RETRY,
        )
        decision = apply_parity(decision, exported.parity)
        self._decision = decision

        self._stage = "publishing"
        published = await self._publish(
            request, trained, candidate, evaluation, exported, decision, snapshot
        )
        self._version = published.version

        self._stage = "notifying"
        duration = workflow.time() - workflow.info().start_time.timestamp()
        await self._notify(
            "succeeded",
            version=published.version,
            promoted=published.promoted,
            metrics={
                "map50_95": evaluation.candidate.map50_95,
                "map50": evaluation.candidate.map50,
            },
            reason=published.reason
            + (
                " (a cancel arrived during publish; the version was completed)"
                if self._canceled_during_publish
                else ""
            ),
        )
        self._stage = "succeeded"
        prefix = published.metadata_key.rsplit("/", 1)[0]
        return RetrainResult(
            model_name=request.model_name,
            version=published.version,
            promoted=published.promoted,
            reason=published.reason,
            production_version=published.production_version,
            candidate_map50_95=evaluation.candidate.map50_95,
            champion_map50_95=evaluation.champion.map50_95 if evaluation.champion else None,
            champion_version=evaluation.champion_version,
            epochs_done=trained.epochs_done,
            stopped_early=trained.stopped_early,
            snapshot_key=snapshot.key,
            dataset_counts=self._counts,
            artifacts={name: f"{prefix}/{name}" for name in ARTIFACT_NAMES},
            duration_seconds=duration,
        )

    async def _train(
        self, request: RetrainRequest, snapshot: SnapshotRef, gpu: str, cpu: str
    ) -> TrainResult:
        train = workflow.start_activity(
            names.TRAIN,
            TrainRequest(
                snapshot=snapshot,
                model_name=request.model_name,
                base=request.base,
                hyperparameters=request.hyperparameters,
                heartbeat_timeout_seconds=request.train_heartbeat_timeout_seconds,
            ),
            result_type=TrainResult,
            task_queue=gpu,
            start_to_close_timeout=timedelta(hours=request.train_timeout_hours),
            heartbeat_timeout=timedelta(seconds=request.train_heartbeat_timeout_seconds),
            retry_policy=_TRAIN_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        while not train.done():
            await workflow.wait_condition(lambda: train.done() or self._stop_requested())
            if self._stop_requested():
                self._stop_sent = True
                await workflow.execute_activity(
                    names.WRITE_CONTROL,
                    WriteControlRequest(
                        run_id=workflow.info().workflow_id, reason="stop_early signal"
                    ),
                    task_queue=cpu,
                    start_to_close_timeout=timedelta(minutes=1),
                    retry_policy=_DATA_RETRY,
                )
        return await train

    def _stop_requested(self) -> bool:
        return self._stop_early and not self._stop_sent

    async def _approval_step(self, request: RetrainRequest, decision: GateDecision) -> GateDecision:
        if not (request.approval.required and decision.promote):
            return decision
        self._stage, self._approval = "awaiting_approval", "pending"
        try:
            await workflow.wait_condition(
                lambda: self._approval != "pending",
                timeout=timedelta(seconds=request.approval.timeout_seconds),
            )
        except TimeoutError:
            self._approval = "timed_out"
            if request.approval.on_timeout == "approve":
                return decision
            return decision.blocked(
                f"approval timed out after {request.approval.timeout_seconds:.0f}s"
            )
        if self._approval == "rejected":
            note = self._approval_note
            who = note.by if note else "unknown"
            comment = f": {note.comment}" if note and note.comment else ""
            return decision.blocked(f"rejected by {who}{comment}")
        return decision

    async def _publish(
        self,
        request: RetrainRequest,
        trained: TrainResult,
        candidate: WeightsRef,
        evaluation: EvaluateResult,
        exported: ExportResult,
        decision: GateDecision,
        snapshot: SnapshotRef,
    ) -> PublishResult:
        info = workflow.info()
        parent = None
        if isinstance(request.base, RegistryBase) and request.base.version.isdigit():
            parent = int(request.base.version)
        publish = workflow.start_activity(
            names.PUBLISH,
            PublishRequest(
                model=request.model_name,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                created_at=workflow.now(),
                candidate=candidate,
                export=exported,
                evaluation=evaluation,
                gate=decision,
                snapshot=snapshot,
                parent_version=parent,
                hyperparameters=_hyperparameters_record(request),
                epochs=trained.epochs_done,
                resumed_from_epoch=trained.resumed_from_epoch,
                results_csv_key=trained.results_csv_key,
            ),
            result_type=PublishResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=_stage_heartbeat(request, minutes=2),
            retry_policy=_DATA_RETRY,
        )
        # Publishing is the point of no return: once it started, a cancel must not leave a
        # CANCELED run whose version was nevertheless written. Shield it, finish it, and end
        # COMPLETED (the cancel is recorded in the progress and the logs).
        try:
            return await asyncio.shield(publish)
        except asyncio.CancelledError:
            self._canceled_during_publish = True
            workflow.logger.warning("cancel arrived during publish: finishing the publish")
            return await publish

    async def _notify(self, outcome: str, **fields: object) -> None:
        request = self._request
        if request is None:
            return
        duration = workflow.time() - workflow.info().start_time.timestamp()
        try:
            await workflow.execute_activity(
                names.NOTIFY,
                NotifyRequest(
                    model_name=request.model_name,
                    workflow_id=workflow.info().workflow_id,
                    outcome=outcome,
                    duration_seconds=duration,
                    **fields,
                ),  # type: ignore[arg-type]
                task_queue=request.cpu_task_queue,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=_NOTIFY_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("notification failed; the run's outcome stands")
