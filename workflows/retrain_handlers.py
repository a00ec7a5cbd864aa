"""RetrainWorkflow's run state and the handlers that read and steer it.

The ``progress`` query, the ``training_progress`` and ``stop_early`` signals and the
``approve``/``reject`` updates (names in :mod:`activities.contracts.names`), and the approval
step that waits for the updates. The pipeline (:mod:`workflows.retrain`) writes the stage and
the results; handlers only read them or set flags the pipeline waits on: they start no
activity and never block, so they are safe at any point of a run and add no command to its
history. Also here: the steps that wait on people or on a cancel (approval, and what runs
past the point of no return).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from workflows import retrain_story as story

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.gate import GateDecision
    from activities.contracts.retrain import (
        ApprovalDecision,
        ApprovalState,
        Progress,
        RetrainRequest,
        Stage,
        TrainingProgress,
    )


class RetrainHandlers:
    """Base of RetrainWorkflow: what a run knows about itself, its handlers, the approval wait."""

    def __init__(self) -> None:
        self._request: RetrainRequest | None = None
        self._stage: Stage = "queued"
        self._training = TrainingProgress(epoch=0, epochs=1)
        self._training_started: float | None = None
        self._training_started_epoch = 0
        self._counts: dict[str, int] = {}
        self._decision: GateDecision | None = None
        self._version: int | None = None
        self._approval: ApprovalState = "not_required"
        self._approval_note: ApprovalDecision | None = None
        self._approval_requested_at: datetime | None = None
        self._stop_early = False
        self._stop_sent = False
        self._error: str | None = None
        self._epochs = 0
        self._canceled_during_publish = False
        self._story = False  # summaries and memo (workflow.patched: only for newer runs)
        self._memo: dict[str, story.MemoValue] = {}
        self._canceled_after_publish = False

    @workflow.query(name=names.PROGRESS_QUERY)
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
            approval=self._approval,
            approval_requested_at=self._approval_requested_at,
            stop_early_requested=self._stop_early,
            error=self._error,
            attempt=self._training.attempt,
            resumed_from_epoch=self._training.resumed_from_epoch,
            tracking=self._training.tracking,
        )

    def _eta(self, now: float) -> float | None:
        if self._stage != "training" or self._training_started is None:
            return None
        done = self._training.epoch - self._training_started_epoch
        if done <= 0:
            return None
        per_epoch = (now - self._training_started) / done
        return per_epoch * max(0, self._epochs - self._training.epoch)

    @workflow.signal(name=names.TRAINING_PROGRESS_SIGNAL)
    def training_progress(self, update: TrainingProgress) -> None:
        """Sent by the training activity at each epoch end."""
        if self._training_started is None or update.attempt != self._training.attempt:
            # A new attempt (resume): measure its pace from here.
            self._training_started = workflow.time()
            self._training_started_epoch = max(0, update.epoch - 1)
        self._training = update
        self._tell(memo=False)  # no command from a signal handler: details only

    @workflow.signal(name=names.STOP_EARLY_SIGNAL)
    def stop_early(self) -> None:
        """Finish training after the current epoch and continue with the best weights."""
        self._stop_early = True

    def _stop_requested(self) -> bool:
        return self._stop_early and not self._stop_sent

    def _cancel_note(self) -> str:
        """What the run's reason adds when a cancel arrived after publishing had begun."""
        if self._canceled_during_publish:
            return " (a cancel arrived during publish; the version was completed)"
        if self._canceled_after_publish:
            return " (a cancel arrived after the version was published; it was ignored)"
        return ""

    async def _past_the_point_of_no_return(self, step: Coroutine[Any, Any, None]) -> None:
        """Run ``step`` after publishing: a cancel arriving now changes nothing."""
        task = asyncio.ensure_future(step)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self._canceled_after_publish = True
            workflow.logger.warning("cancel arrived after publishing: the run completes")
            await task

    async def _approval_step(
        self,
        request: RetrainRequest,
        decision: GateDecision,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> GateDecision:
        """``decision``, or blocked by a rejection or a timeout, when approval is required.

        Waits (a durable timer) for ``approve``/``reject`` only when the gate would promote;
        ``announce`` (the pipeline's notification) runs once approval is being asked for.
        """
        if not (request.approval.required and decision.promote):
            return decision
        self._ask_for_approval()
        if announce is not None:
            await announce()
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

    def _ask_for_approval(self) -> None:
        """From now on ``approve`` and ``reject`` are accepted (until one of them, or a timeout)."""
        self._approval = "pending"
        # Workflow time: a state change only (no command), so runs in flight replay unchanged.
        self._approval_requested_at = workflow.now()
        self._set_stage("awaiting_approval")

    def _set_stage(self, stage: Stage) -> None:
        """Enter ``stage``: the ``progress`` query, the UI's details and the memo show it."""
        self._stage = stage
        self._tell(memo=True)

    def _tell(self, *, memo: bool) -> None:
        """Current details for the Temporal UI (no history event) and, on newer runs and
        ``memo``, the memo fields that changed (one event per stage, none per epoch)."""
        progress = self.progress()
        workflow.set_current_details(story.current_details(progress))
        if not (memo and self._story):
            return
        changed = {k: v for k, v in story.memo(progress).items() if self._memo.get(k) != v}
        if changed:
            self._memo.update(changed)
            workflow.upsert_memo(changed)

    @workflow.update(name=names.APPROVE_UPDATE)
    async def approve(self, decision: ApprovalDecision) -> str:
        """Approve moving the production alias (only while awaiting approval)."""
        self._approval, self._approval_note = "approved", decision
        return f"approved by {decision.by}"

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._require_pending("approve")

    @workflow.update(name=names.REJECT_UPDATE)
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
