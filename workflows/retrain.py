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
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

from workflows import patches
from workflows import retrain_notify as notify
from workflows import retrain_steps as steps
from workflows import retrain_story as story
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
    from workflows.gate import apply_parity, decide, protect_classes

_WORKFLOW_ID_PREFIX = "retrain-"


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
        # Runs started before the UI story (summaries, memo) replay without it.
        self._story = workflow.patched(patches.RETRAIN_UI_STORY)
        try:
            return await self._pipeline(request)
        except (asyncio.CancelledError, FailureError) as exc:
            if is_cancelled_exception(exc):
                # Nothing was published; production is untouched. Tell people, then end
                # CANCELED by re-raising.
                self._error = "canceled"
                self._set_stage("canceled")
                await self._notify("canceled", reason="canceled")
                raise
            failure = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
            message = failure.message if isinstance(failure, FailureError) else str(failure)
            stage = self._stage
            error = f"{stage}: {message}"
            self._error = error
            self._set_stage("failed")
            await self._notify("failed", reason=error)
            kind = failure.type if isinstance(failure, ApplicationError) else None
            raise ApplicationError(
                f"retrain of {request.model_name} failed while {stage}: {message}",
                type=kind or "RetrainFailed",
                non_retryable=True,
            ) from exc

    async def _pipeline(self, request: RetrainRequest) -> RetrainResult:
        """The stages in order; each sets the stage the ``progress`` query shows."""
        self._set_stage("assembling")
        snapshot = await self._assemble(request)

        self._set_stage("training")
        trained = await self._train(request, snapshot)
        candidate = steps.candidate_of(trained)
        self._training = steps.training_done(trained)

        self._set_stage("evaluating")
        evaluation, decision = await self._evaluate(request, snapshot, candidate)
        decision = await self._approval_step(
            request, decision, announce=lambda: self._announce_approval(evaluation, decision)
        )
        self._decision = decision

        self._set_stage("exporting")
        exported = await self._export(request, snapshot, candidate)
        decision = apply_parity(decision, exported.parity)
        self._decision = decision

        self._set_stage("publishing")
        published = await self._publish(request, trained, evaluation, exported, decision, snapshot)
        self._version = published.version

        self._set_stage("notifying")
        duration = self._elapsed()  # the run's result counts up to here (notify excluded)
        await self._notify(
            "succeeded",
            version=published.version,
            promoted=published.promoted,
            metrics=notify.headline_metrics(evaluation),
            reason=published.reason
            + (
                " (a cancel arrived during publish; the version was completed)"
                if self._canceled_during_publish
                else ""
            ),
            report=notify.report_location(request.model_name, published),
        )
        self._set_stage("succeeded")
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

    def _summary(self, text: str) -> str | None:
        """An activity's summary for the Temporal UI (None on runs older than the story)."""
        return text if self._story else None

    async def _assemble(self, request: RetrainRequest) -> SnapshotRef:
        assembled: AssembleResult = await workflow.execute_activity(
            names.ASSEMBLE_DATASET,
            request.dataset,
            result_type=AssembleResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=steps.stage_heartbeat(request, minutes=2),
            retry_policy=steps.DATA_RETRY,
            summary=self._summary(story.assemble_summary(request)),
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
            summary=self._summary(story.train_summary(request, snapshot)),
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
                    summary=self._summary(story.stop_early_summary(workflow.info().workflow_id)),
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
            summary=self._summary(story.evaluate_summary(request, snapshot)),
        )
        decision = decide(
            evaluation.candidate,
            evaluation.champion,
            evaluation.ci,
            request.gate,
            champion_version=evaluation.champion_version,
        )
        # Runs started before the per-class rule replay the decision they made.
        if workflow.patched(patches.PER_CLASS_GATE):
            decision = protect_classes(decision, evaluation)
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
            summary=self._summary(story.export_summary(request)),
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
            summary=self._summary(story.publish_summary(request, decision)),
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
        report: tuple[str | None, str | None] = (None, None),
    ) -> None:
        """Tell people how the run ended (best effort: a failed notification changes nothing).

        ``report``: where the evidence is and the command that writes it to a folder.
        """
        request = self._request
        if request is None:
            return
        summary = NotifyRequest(
            model_name=request.model_name,
            workflow_id=workflow.info().workflow_id,
            outcome=outcome,
            version=version,
            promoted=promoted,
            metrics=metrics or {},
            reason=reason,
            duration_seconds=self._elapsed(),
            report=report[0],
            report_command=report[1],
        )
        await notify.send(
            summary,
            request.cpu_task_queue,
            self._summary(story.notify_summary(outcome, version)),
        )

    async def _announce_approval(self, evaluation: EvaluateResult, decision: GateDecision) -> None:
        """Ask people for approval, pointing at the evaluation's evidence."""
        if workflow.patched(patches.APPROVAL_NOTICE):
            await self._notify(
                "awaiting_approval",
                reason=decision.reason,
                metrics=notify.headline_metrics(evaluation),
                report=(notify.evidence_location(evaluation), None),
            )
