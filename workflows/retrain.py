"""RetrainWorkflow: assemble -> train -> evaluate -> gate -> (approval) -> export -> publish.

Deterministic and side-effect free: every effect is an activity called by name, on the CPU or
GPU task queue named in the request. Bad input fails the run fast (non-retryable errors keep
their type and message); a cancel stops training, publishes nothing and leaves production as
it was, until publishing begins: from then on the run completes (the point of no return);
``stop_early`` ends training after the current epoch and the pipeline goes on.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

from workflows import retrain_steps as steps
from workflows.retrain_handlers import RetrainHandlers

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.dataset import AssembleResult, SnapshotRef
    from activities.contracts.evaluation import EvaluateResult, WeightsRef
    from activities.contracts.export import ExportResult
    from activities.contracts.gate import GateDecision
    from activities.contracts.notify import NotifyRequest, Outcome
    from activities.contracts.registry import PublishResult
    from activities.contracts.retrain import RetrainRequest, RetrainResult
    from activities.contracts.training import TrainResult, WriteControlRequest
    from workflows.gate import apply_parity, decide

_WORKFLOW_ID_PREFIX = "retrain-"
CANCEL_AFTER_PUBLISH_PATCH = "cancel-after-publish-completes"
"""Patch (``workflow.patched``): a cancel that arrives after publishing (while notifying)
no longer ends the run CANCELED, and the result's reason names a cancel that arrived after
publishing began. Runs recorded before it replay the old way."""


def workflow_id_for(model_name: str) -> str:
    """One retrain per model: this id makes Temporal refuse a second concurrent start."""
    return f"{_WORKFLOW_ID_PREFIX}{model_name}"


def model_name_of(workflow_id: str) -> str:
    """The model a retrain's workflow id names (the inverse of :func:`workflow_id_for`)."""
    if not workflow_id.startswith(_WORKFLOW_ID_PREFIX):
        raise ValueError(f"{workflow_id!r} is not a retrain workflow id ({_WORKFLOW_ID_PREFIX}...)")
    return workflow_id.removeprefix(_WORKFLOW_ID_PREFIX)


@workflow.defn(name=names.RETRAIN_WORKFLOW)
class RetrainWorkflow(RetrainHandlers):
    """One retrain of one model, durable across worker and server restarts.

    Handlers and run state: :class:`~workflows.retrain_handlers.RetrainHandlers`; requests,
    retries and timeouts of the activities: :mod:`workflows.retrain_steps`.
    """

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
            error = f"{stage}: {message}"
            self._stage, self._error = "failed", error
            await self._notify("failed", reason=error)
            kind = failure.type if isinstance(failure, ApplicationError) else None
            raise ApplicationError(
                f"retrain of {request.model_name} failed while {stage}: {message}",
                type=kind or "RetrainFailed",
                non_retryable=True,
            ) from exc

    async def _pipeline(self, request: RetrainRequest) -> RetrainResult:
        """The stages in order; each sets the stage the ``progress`` query shows."""
        self._stage = "assembling"
        snapshot = await self._assemble(request)

        self._stage = "training"
        trained = await self._train(request, snapshot)
        candidate = steps.candidate_of(trained)

        self._stage = "evaluating"
        evaluation, decision = await self._evaluate(request, snapshot, candidate)
        decision = await self._approval_step(request, decision)
        self._decision = decision

        self._stage = "exporting"
        exported = await self._export(request, snapshot, candidate)
        decision = apply_parity(decision, exported.parity)
        self._decision = decision

        self._stage = "publishing"
        published = await self._publish(request, trained, evaluation, exported, decision, snapshot)
        self._version = published.version

        self._stage = "notifying"
        duration = self._elapsed()  # the run's result counts up to here (notify excluded)
        notify = self._notify(
            "succeeded",
            version=published.version,
            promoted=published.promoted,
            metrics={
                "map50_95": evaluation.candidate.map50_95,
                "map50": evaluation.candidate.map50,
            },
            reason=published.reason + self._cancel_note(),
        )
        if workflow.patched(CANCEL_AFTER_PUBLISH_PATCH):
            await self._past_the_point_of_no_return(notify)
            # The result says it too: "completed" must never hide that a cancel was asked for.
            published = published.model_copy(
                update={"reason": published.reason + self._cancel_note()}
            )
        else:  # runs recorded before the patch: a cancel while notifying ended them CANCELED
            await notify
        self._stage = "succeeded"
        return steps.retrain_result(
            request,
            published=published,
            evaluation=evaluation,
            trained=trained,
            snapshot=snapshot,
            counts=self._counts,
            duration_seconds=duration,
        )

    def _elapsed(self) -> float:
        return workflow.time() - workflow.info().start_time.timestamp()

    async def _assemble(self, request: RetrainRequest) -> SnapshotRef:
        assembled: AssembleResult = await workflow.execute_activity(
            names.ASSEMBLE_DATASET,
            request.dataset,
            result_type=AssembleResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=steps.stage_heartbeat(request, minutes=2),
            retry_policy=steps.DATA_RETRY,
        )
        self._counts = dict(assembled.counts)
        return assembled.snapshot

    async def _train(self, request: RetrainRequest, snapshot: SnapshotRef) -> TrainResult:
        """Train on the GPU queue; a ``stop_early`` signal writes the control object meanwhile."""
        train = workflow.start_activity(
            names.TRAIN,
            steps.train_request(request, snapshot),
            result_type=TrainResult,
            task_queue=request.gpu_task_queue,
            start_to_close_timeout=timedelta(hours=request.train_timeout_hours),
            heartbeat_timeout=timedelta(seconds=request.train_heartbeat_timeout_seconds),
            retry_policy=steps.TRAIN_RETRY,
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
                    task_queue=request.cpu_task_queue,
                    start_to_close_timeout=timedelta(minutes=1),
                    retry_policy=steps.DATA_RETRY,
                )
        trained: TrainResult = await train
        return trained

    async def _evaluate(
        self, request: RetrainRequest, snapshot: SnapshotRef, candidate: WeightsRef
    ) -> tuple[EvaluateResult, GateDecision]:
        """Candidate vs production on the GPU queue, and the gate's decision on the numbers."""
        evaluation: EvaluateResult = await workflow.execute_activity(
            names.EVALUATE,
            steps.evaluate_request(request, snapshot, candidate),
            result_type=EvaluateResult,
            task_queue=request.gpu_task_queue,
            start_to_close_timeout=timedelta(hours=4),
            heartbeat_timeout=steps.stage_heartbeat(request, minutes=5),
            retry_policy=steps.DATA_RETRY,
        )
        decision = decide(
            evaluation.candidate,
            evaluation.champion,
            evaluation.ci,
            request.gate,
            champion_version=evaluation.champion_version,
        )
        self._decision = decision
        return evaluation, decision

    async def _export(
        self, request: RetrainRequest, snapshot: SnapshotRef, candidate: WeightsRef
    ) -> ExportResult:
        exported: ExportResult = await workflow.execute_activity(
            names.EXPORT,
            steps.export_request(request, snapshot, candidate, workflow.info().workflow_id),
            result_type=ExportResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=steps.stage_heartbeat(request, minutes=5),
            retry_policy=steps.DATA_RETRY,
        )
        return exported

    async def _publish(
        self,
        request: RetrainRequest,
        trained: TrainResult,
        evaluation: EvaluateResult,
        exported: ExportResult,
        decision: GateDecision,
        snapshot: SnapshotRef,
    ) -> PublishResult:
        info = workflow.info()
        publish = workflow.start_activity(
            names.PUBLISH,
            steps.publish_request(
                request,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                created_at=workflow.now(),
                trained=trained,
                evaluation=evaluation,
                exported=exported,
                decision=decision,
                snapshot=snapshot,
            ),
            result_type=PublishResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=steps.stage_heartbeat(request, minutes=2),
            retry_policy=steps.DATA_RETRY,
        )
        # Publishing is the point of no return: once it started, a cancel must not leave a
        # CANCELED run whose version was nevertheless written. Shield it, finish it, and end
        # COMPLETED (the cancel is recorded in the progress and the logs).
        try:
            published: PublishResult = await asyncio.shield(publish)
        except asyncio.CancelledError:
            self._canceled_during_publish = True
            workflow.logger.warning("cancel arrived during publish: finishing the publish")
            published = await publish
        return published

    async def _notify(
        self,
        outcome: Outcome,
        *,
        reason: str,
        version: int | None = None,
        promoted: bool = False,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Tell people how the run ended (best effort: a failed notification changes nothing)."""
        request = self._request
        if request is None:
            return
        try:
            await workflow.execute_activity(
                names.NOTIFY,
                NotifyRequest(
                    model_name=request.model_name,
                    workflow_id=workflow.info().workflow_id,
                    outcome=outcome,
                    version=version,
                    promoted=promoted,
                    metrics=metrics or {},
                    reason=reason,
                    duration_seconds=self._elapsed(),
                ),
                task_queue=request.cpu_task_queue,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=steps.NOTIFY_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("notification failed; the run's outcome stands")
