"""Every outcome a recorded history must cover: how to produce it on stub activities, and what
its history must show (:mod:`tests.histories.facts`).

Most outcomes are produced by the real workflows on the real Temporal dev server against the
stub activities of ``tests/workflows`` (registered under the real activity names): a history
records the workflow's commands and the events it met, which is what replay checks, so stubs
are as good as real activities here. One outcome needs more: ``retrain-resumed-after-worker-
kill`` runs its first worker as a separate process and SIGKILLs it during training
(:mod:`tests.histories.kill`). One history, ``retrain_promoted_v1``, comes from a real run
(real training, real S3: ``tests/integration/test_retrain.py`` with
``SENTINEL_RECORD_HISTORY=1``); it is not re-recorded by the script.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle

from activities.contracts import names
from activities.contracts.controller import ControllerConfig
from activities.contracts.registry import (
    ListVersionsRequest,
    PromoteVersionRequest,
    RollbackRequest,
    ShowVersionRequest,
)
from activities.contracts.retrain import ApprovalDecision, ApprovalPolicy
from tests.helpers import factories
from tests.histories.facts import Facts
from tests.histories.kill import resumed_after_worker_kill
from tests.workflows.harness import Harness
from tests.workflows.stubs import PIPELINE, stub_evaluation
from workflows.controller import RetrainCheckWorkflow
from workflows.registry_ops import (
    ListVersionsWorkflow,
    PromoteVersionWorkflow,
    RollbackProductionWorkflow,
    ShowVersionWorkflow,
)

Script = Callable[[Harness], Awaitable[WorkflowHandle[Any, Any]]]


@dataclass(frozen=True)
class Outcome:
    """One outcome: its file name, how it is produced, what its history shows."""

    name: str
    workflow: str
    shows: Callable[[Facts], bool]
    script: Script | None  # None: recorded elsewhere (a real run)
    own_workers: bool = False  # the script starts (and kills) workers itself
    how: str = "stub activities"


async def _ended(handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
    """``handle`` once its run ended, however it ended."""
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


async def _retrain(h: Harness, **updates: Any) -> WorkflowHandle[Any, Any]:
    return await _ended(await h.start(h.request(**updates)))


async def promoted(h: Harness) -> WorkflowHandle[Any, Any]:
    return await _retrain(h)


async def not_promoted(h: Harness) -> WorkflowHandle[Any, Any]:
    request = h.request()
    h.stubs.returns(names.EVALUATE, stub_evaluation(request, 0.5, 0.6, 1))
    return await _ended(await h.start(request))


async def parity_blocked(h: Harness) -> WorkflowHandle[Any, Any]:
    h.stubs.returns(names.EXPORT, lambda r: factories.exported(r.weights, passed=False))
    return await _retrain(h)


def _decided(update: str | None, timeout: float = 600) -> Script:
    async def script(h: Harness) -> WorkflowHandle[Any, Any]:
        policy = ApprovalPolicy(required=True, timeout_seconds=timeout)
        handle = await h.start(h.request(approval=policy))
        if update is not None:
            await h.reach_stage(handle, "awaiting_approval")
            await handle.execute_update(update, ApprovalDecision(by="alice"), result_type=str)
        return await _ended(handle)

    return script


def _canceled_in(stage: str, held: str | None) -> Script:
    async def script(h: Harness) -> WorkflowHandle[Any, Any]:
        if held:
            h.stubs.hold(held)
        approval = ApprovalPolicy(required=stage == "awaiting_approval", timeout_seconds=600)
        handle = await h.start(h.request(approval=approval))
        await h.reach_stage(handle, stage)
        if held:
            await h.stubs.started(held)
        await handle.cancel()
        await _ended(handle)
        if held:
            await h.stubs.cancelled(held)
        return handle

    return script


async def cancel_during_publish(h: Harness) -> WorkflowHandle[Any, Any]:
    release = h.stubs.hold(names.PUBLISH)
    handle = await h.start(h.request())
    await h.stubs.started(names.PUBLISH)
    await h.reach_stage(handle, "publishing")
    await handle.cancel()
    release.set()
    return await _ended(handle)


async def failed_bad_input(h: Harness) -> WorkflowHandle[Any, Any]:
    h.stubs.fail(names.ASSEMBLE_DATASET, "no images under datasets/missing")
    return await _retrain(h)


async def stop_early(h: Harness) -> WorkflowHandle[Any, Any]:
    release = h.stubs.hold(names.TRAIN)
    request = h.request()
    h.stubs.returns(
        names.TRAIN,
        lambda r: factories.train_result(
            f"retrain-{request.model_name}", epochs=5, epochs_done=2, stopped_early=True
        ),
    )
    handle = await h.start(request)
    await h.stubs.started(names.TRAIN)
    await handle.signal(names.STOP_EARLY_SIGNAL)
    await h.stubs.started(names.WRITE_CONTROL)
    release.set()
    return await _ended(handle)


async def notify_failed(h: Harness) -> WorkflowHandle[Any, Any]:
    h.stubs.fail(names.NOTIFY, "webhook answered 500", kind="WebhookError")
    return await _retrain(h)


async def _check(h: Harness, new_verified: int) -> WorkflowHandle[Any, Any]:
    h.stubs.returns(names.COUNT_NEW_VERIFIED, factories.count_new_result(new_verified))
    config = ControllerConfig(request=h.request(), threshold=10)
    handle = await h.client.start_workflow(
        RetrainCheckWorkflow.run, config, id=f"check-{uuid.uuid4().hex[:8]}", task_queue=h.cpu
    )
    return await _ended(h.track(handle))


async def controller_below_threshold(h: Harness) -> WorkflowHandle[Any, Any]:
    return await _check(h, 9)


async def controller_started_retrain(h: Harness) -> WorkflowHandle[Any, Any]:
    return await _check(h, 10)


async def controller_retrain_already_running(h: Harness) -> WorkflowHandle[Any, Any]:
    release = h.stubs.hold(names.ASSEMBLE_DATASET)
    request = h.request()
    h.stubs.returns(names.COUNT_NEW_VERIFIED, factories.count_new_result(10))
    running = await h.start(request)
    config = ControllerConfig(request=request, threshold=10)
    handle = await h.client.start_workflow(
        RetrainCheckWorkflow.run, config, id=f"check-{uuid.uuid4().hex[:8]}", task_queue=h.cpu
    )
    await _ended(h.track(handle))
    release.set()
    await _ended(running)
    return handle


def _registry_op(workflow: Any, request: Callable[[], Any], fails: str | None = None) -> Script:
    async def script(h: Harness) -> WorkflowHandle[Any, Any]:
        if fails:
            refusal = "production of 'parts' is v4, not v2 as the caller saw it"
            h.stubs.fail(fails, refusal, kind="ProductionMovedError")
        handle = await h.client.start_workflow(
            workflow, request(), id=f"op-{uuid.uuid4().hex[:8]}", task_queue=h.cpu
        )
        return await _ended(h.track(handle))

    return script


def _promote() -> PromoteVersionRequest:
    return PromoteVersionRequest(
        model="parts",
        version=3,
        reason="hotfix",
        request_id=f"promote-{uuid.uuid4().hex[:8]}",
        requested_at=factories.AT,
        expected_production=2,
    )


def _rollback() -> RollbackRequest:
    return RollbackRequest(
        model="parts",
        reason="regression",
        request_id=f"rollback-{uuid.uuid4().hex[:8]}",
        requested_at=factories.AT,
        expected_production=3,
    )


def _completed_with(promoted: bool) -> Callable[[Facts], bool]:
    def shows(f: Facts) -> bool:
        result = f.result or {}
        return (
            f.ended == "completed" and f.activities == PIPELINE and result["promoted"] is promoted
        )

    return shows


def _canceled_after(activity: str | None) -> Callable[[Facts], bool]:
    def shows(f: Facts) -> bool:
        ran = [a for a in f.activities if a != names.NOTIFY]
        last = ran[-1] if ran else None
        return f.ended == "canceled" and f.cancel_requested and last == (activity or names.EVALUATE)

    return shows


def _reason_has(text: str) -> Callable[[Facts], bool]:
    return lambda f: f.ended == "completed" and text in (f.result or {}).get("reason", "")


RETRAIN = names.RETRAIN_WORKFLOW
OUTCOMES: list[Outcome] = [
    Outcome("retrain_promoted_v1", RETRAIN, _completed_with(True), None, how="real run"),
    Outcome("retrain-promoted", RETRAIN, _completed_with(True), promoted),
    Outcome("retrain-not-promoted", RETRAIN, _completed_with(False), not_promoted),
    Outcome("retrain-parity-blocked", RETRAIN, _reason_has("ONNX parity failed"), parity_blocked),
    Outcome(
        "retrain-approved",
        RETRAIN,
        lambda f: f.updates == [names.APPROVE_UPDATE] and (f.result or {}).get("promoted") is True,
        _decided(names.APPROVE_UPDATE),
    ),
    Outcome(
        "retrain-rejected",
        RETRAIN,
        lambda f: f.updates == [names.REJECT_UPDATE] and (f.result or {}).get("promoted") is False,
        _decided(names.REJECT_UPDATE),
    ),
    Outcome(
        "retrain-approval-timed-out",
        RETRAIN,
        lambda f: f.timers_fired == 1 and not f.updates and _reason_has("timed out")(f),
        _decided(None, timeout=1),
    ),
    *[
        Outcome(
            f"retrain-canceled-{stage.replace('_', '-')}",
            RETRAIN,
            _canceled_after(held),
            _canceled_in(stage, held),
        )
        for stage, held in [
            ("assembling", names.ASSEMBLE_DATASET),
            ("training", names.TRAIN),
            ("evaluating", names.EVALUATE),
            ("awaiting_approval", None),
            ("exporting", names.EXPORT),
        ]
    ],
    Outcome(
        "retrain-cancel-during-publish",
        RETRAIN,
        lambda f: f.cancel_requested and _completed_with(True)(f),
        cancel_during_publish,
    ),
    Outcome(
        "retrain-failed-bad-input",
        RETRAIN,
        lambda f: f.ended == "failed" and f.failure_types[:1] == ["BadInputError"],
        failed_bad_input,
    ),
    Outcome(
        "retrain-stop-early",
        RETRAIN,
        lambda f: (
            names.STOP_EARLY_SIGNAL in f.signals
            and names.WRITE_CONTROL in f.activities
            and (f.result or {}).get("stopped_early") is True
        ),
        stop_early,
    ),
    Outcome(
        "retrain-resumed-after-worker-kill",
        RETRAIN,
        lambda f: (
            f.ended == "completed"
            and f.attempts.get(names.TRAIN, 0) >= 2
            and f.workflow_task_timeouts >= 1
        ),
        resumed_after_worker_kill,
        own_workers=True,
        how="stub activities; the first worker process SIGKILLed during training",
    ),
    Outcome(
        "retrain-notify-failed",
        RETRAIN,
        lambda f: _completed_with(True)(f) and f.failed_activities == [names.NOTIFY],
        notify_failed,
    ),
    Outcome(
        "controller-below-threshold",
        names.CONTROLLER_WORKFLOW,
        lambda f: f.ended == "completed" and not f.children,
        controller_below_threshold,
    ),
    Outcome(
        "controller-started-retrain",
        names.CONTROLLER_WORKFLOW,
        lambda f: f.children == [RETRAIN] and (f.result or {}).get("started") is True,
        controller_started_retrain,
    ),
    Outcome(
        "controller-retrain-already-running",
        names.CONTROLLER_WORKFLOW,
        lambda f: f.children_refused == 1 and (f.result or {}).get("started") is False,
        controller_retrain_already_running,
    ),
    Outcome(
        "registry-promote",
        names.PROMOTE_VERSION_WORKFLOW,
        lambda f: f.ended == "completed",
        _registry_op(PromoteVersionWorkflow.run, _promote),
    ),
    Outcome(
        "registry-promote-refused",
        names.PROMOTE_VERSION_WORKFLOW,
        lambda f: f.ended == "failed" and "ProductionMovedError" in f.failure_types,
        _registry_op(PromoteVersionWorkflow.run, _promote, fails=names.PROMOTE_VERSION),
    ),
    Outcome(
        "registry-rollback",
        names.ROLLBACK_PRODUCTION_WORKFLOW,
        lambda f: f.ended == "completed",
        _registry_op(RollbackProductionWorkflow.run, _rollback),
    ),
    Outcome(
        "registry-list",
        names.LIST_VERSIONS_WORKFLOW,
        lambda f: f.ended == "completed",
        _registry_op(ListVersionsWorkflow.run, lambda: ListVersionsRequest(model="parts")),
    ),
    Outcome(
        "registry-show",
        names.SHOW_VERSION_WORKFLOW,
        lambda f: f.ended == "completed",
        _registry_op(ShowVersionWorkflow.run, lambda: ShowVersionRequest(model="parts")),
    ),
]
"""Every outcome, by file name (``tests/histories/<generation>/<name>.json``)."""

BY_NAME = {outcome.name: outcome for outcome in OUTCOMES}
