"""How each outcome of :mod:`tests.histories.outcomes` is produced: the real workflows on the
real Temporal dev server, against the stub activities of ``tests/workflows`` (registered under
the real activity names) scripted per outcome. The worker-kill outcome lives in
:mod:`tests.histories.kill`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle

from activities.contracts import names
from activities.contracts.controller import ControllerConfig
from activities.contracts.registry import PromoteVersionRequest, RollbackRequest
from activities.contracts.retrain import ApprovalDecision, ApprovalPolicy
from tests.helpers import factories
from tests.workflows.harness import Harness
from tests.workflows.stubs import stub_evaluation
from workflows.controller import RetrainCheckWorkflow

Script = Callable[[Harness], Awaitable[WorkflowHandle[Any, Any]]]
"""Produces one outcome on a harness; returns the handle of the run to record."""


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


async def class_collapse_refused(h: Harness) -> WorkflowHandle[Any, Any]:
    """A v2 better overall whose class ``square`` collapsed: the per-class rule refuses it,
    so the approval it would need is never asked for."""
    request = h.request(approval=ApprovalPolicy(required=True, timeout_seconds=600))
    evaluation = factories.with_class_loss(stub_evaluation(request, 0.7, 0.6, 1))
    h.stubs.returns(names.EVALUATE, evaluation)
    return await _ended(await h.start(request))


def decided(update: str | None, timeout: float = 600) -> Script:
    async def script(h: Harness) -> WorkflowHandle[Any, Any]:
        policy = ApprovalPolicy(required=True, timeout_seconds=timeout)
        handle = await h.start(h.request(approval=policy))
        if update is not None:
            await h.reach_stage(handle, "awaiting_approval")
            await handle.execute_update(update, ApprovalDecision(by="alice"), result_type=str)
        return await _ended(handle)

    return script


def canceled_in(stage: str, held: str | None) -> Script:
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


def registry_op(workflow: Any, request: Callable[[], Any], fails: str | None = None) -> Script:
    async def script(h: Harness) -> WorkflowHandle[Any, Any]:
        if fails:
            refusal = "production of 'parts' is v4, not v2 as the caller saw it"
            h.stubs.fail(fails, refusal, kind="ProductionMovedError")
        handle = await h.client.start_workflow(
            workflow, request(), id=f"op-{uuid.uuid4().hex[:8]}", task_queue=h.cpu
        )
        return await _ended(h.track(handle))

    return script


def promote_request() -> PromoteVersionRequest:
    return PromoteVersionRequest(
        model="parts",
        version=3,
        reason="hotfix",
        request_id=f"promote-{uuid.uuid4().hex[:8]}",
        requested_at=factories.AT,
        expected_production=2,
    )


def rollback_request() -> RollbackRequest:
    return RollbackRequest(
        model="parts",
        reason="regression",
        request_id=f"rollback-{uuid.uuid4().hex[:8]}",
        requested_at=factories.AT,
        expected_production=3,
    )
