"""RetrainWorkflow's unhappy paths on stub activities: bad input raised by each stage, a cancel
in each stage before publishing, a cancel during publishing or notifying (past the point of no
return), a cancel after the run ended, a failing notification."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import names
from activities.contracts.retrain import ApprovalPolicy
from activities.infra.settings import Settings
from tests.helpers.history import event_ids
from tests.helpers.polling import eventually
from tests.workflows.harness import Harness
from tests.workflows.stubs import PIPELINE, gate_of, stub_evaluation
from workflows.client import RetrainNotRunningError, SentinelClient

pytestmark = pytest.mark.timeout(60)

STAGES = [
    (names.ASSEMBLE_DATASET, "assembling"),
    (names.TRAIN, "training"),
    (names.EVALUATE, "evaluating"),
    (names.EXPORT, "exporting"),
    (names.PUBLISH, "publishing"),
]


def called_up_to(activity_name: str | None, then: str = names.NOTIFY) -> list[str]:
    """The pipeline's activities up to and including ``activity_name``, then ``then``."""
    stages = [name for name in PIPELINE if name != names.NOTIFY]
    last = stages.index(activity_name) if activity_name else stages.index(names.EVALUATE)
    return [*stages[: last + 1], then]


@pytest.mark.parametrize(("activity_name", "stage"), STAGES, ids=[s for _, s in STAGES])
async def test_bad_input_in_a_stage_fails_the_run_with_its_type_and_message(
    harness: Harness, activity_name: str, stage: str
) -> None:
    stubs = harness.stubs
    message = f"stub {activity_name}: the request names nothing usable"
    stubs.fail(activity_name, message)
    request = harness.request()
    handle = await harness.start(request)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()

    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("BadInputError", True)
    assert cause.message == f"retrain of {request.model_name} failed while {stage}: {message}"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    # Non-retryable: the stage ran once; nothing after it ran; publish only if it was the stage.
    assert stubs.order() == called_up_to(activity_name)
    assert len(stubs.calls_of(names.PUBLISH)) == (activity_name == names.PUBLISH)
    notify = stubs.only_request(names.NOTIFY)
    assert (notify.outcome, notify.reason) == ("failed", f"{stage}: {message}")
    assert (notify.version, notify.promoted, notify.workflow_id) == (None, False, handle.id)
    final = await harness.progress(handle)
    assert (final.stage, final.error) == ("failed", f"{stage}: {message}")


CANCEL_STAGES = [
    ("assembling", names.ASSEMBLE_DATASET),
    ("training", names.TRAIN),
    ("evaluating", names.EVALUATE),
    ("awaiting_approval", None),
    ("exporting", names.EXPORT),
]


@pytest.mark.parametrize(("stage", "held"), CANCEL_STAGES, ids=[s for s, _ in CANCEL_STAGES])
async def test_cancel_before_publishing_ends_canceled_with_nothing_published(
    harness: Harness, stage: str, held: str | None
) -> None:
    stubs = harness.stubs
    approval = ApprovalPolicy(required=stage == "awaiting_approval", timeout_seconds=600)
    if held:
        stubs.hold(held)
    handle = await harness.start(harness.request(approval=approval))
    if held:
        await stubs.started(held)
    await harness.reach_stage(handle, stage)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()

    assert isinstance(info.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    if held:
        await stubs.cancelled(held)  # the running stage itself was told to stop
    if stage == "awaiting_approval":  # people were asked for approval, then told it ended
        assert stubs.order() == [*called_up_to(None), names.NOTIFY]
        asked, notify = stubs.requests_of(names.NOTIFY)
        assert asked.outcome == "awaiting_approval"
    else:
        assert stubs.order() == called_up_to(held)
        notify = stubs.only_request(names.NOTIFY)
    assert stubs.calls_of(names.PUBLISH) == []
    assert (notify.outcome, notify.reason, notify.version) == ("canceled", "canceled", None)
    final = await harness.progress(handle)
    assert (final.stage, final.error) == ("canceled", "canceled")


async def test_cancel_during_publish_lets_the_publish_finish_and_completes(
    harness: Harness,
) -> None:
    stubs = harness.stubs
    request = harness.request()
    release = stubs.hold(names.PUBLISH)
    handle = await harness.start(request)
    await stubs.started(names.PUBLISH)
    await harness.reach_stage(handle, "publishing")
    await handle.cancel()  # recorded in the history before the publish completes
    release.set()
    result = await handle.result()

    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    gate = gate_of(request, stub_evaluation(request, 0.6))
    note = " (a cancel arrived during publish; the version was completed)"
    assert (result.version, result.promoted, result.reason) == (1, True, gate.reason + note)
    assert stubs.order() == PIPELINE
    assert len(stubs.calls_of(names.PUBLISH)) == 1
    assert not stubs.was_cancelled(names.PUBLISH)  # shielded: the cancel never reached it
    notify = stubs.only_request(names.NOTIFY)
    assert (notify.outcome, notify.version, notify.promoted) == ("succeeded", 1, True)
    assert notify.reason == gate.reason + note
    assert (await harness.progress(handle)).stage == "succeeded"


async def test_cancel_while_notifying_success_changes_nothing_and_completes(
    harness: Harness,
) -> None:
    """Past publish the version exists: a cancel must not end the run CANCELED."""
    stubs = harness.stubs
    request = harness.request()
    release = stubs.hold(names.NOTIFY)
    handle = await harness.start(request)
    await stubs.started(names.NOTIFY)
    await handle.cancel()
    await eventually(lambda: _cancel_requested(handle), message="cancel recorded")
    release.set()
    result = await handle.result()

    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    gate = gate_of(request, stub_evaluation(request, 0.6))
    assert (result.version, result.promoted) == (1, True)
    assert result.reason == (
        gate.reason + " (a cancel arrived after the version was published; it was ignored)"
    )
    assert stubs.order() == PIPELINE and not stubs.was_cancelled(names.NOTIFY)
    assert stubs.only_request(names.NOTIFY).outcome == "succeeded"
    await harness.replay(handle, record_as="retrain_cancel_while_notifying")


async def _cancel_requested(handle: WorkflowHandle[Any, Any]) -> bool:
    history = await handle.fetch_history()
    return bool(event_ids(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED))


async def test_cancel_after_the_run_ended_is_refused_and_changes_nothing(
    harness: Harness,
) -> None:
    request = harness.request()
    handle = await harness.start(request)
    await handle.result()
    before = len((await handle.fetch_history()).events)
    sentinel = SentinelClient(
        harness.client, Settings(cpu_task_queue=harness.cpu, gpu_task_queue=harness.gpu)
    )

    with pytest.raises(RetrainNotRunningError) as info:
        await sentinel.cancel(request.model_name)
    assert str(info.value) == (
        f"nothing to cancel: the latest retrain of '{request.model_name}' "
        f"(retrain-{request.model_name}) already ended COMPLETED; nothing was changed"
    )
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert len((await handle.fetch_history()).events) == before
    with pytest.raises(RetrainNotRunningError, match="was ever started"):
        await sentinel.cancel(f"never-{request.model_name}")


async def test_a_failing_notification_never_fails_the_run(harness: Harness) -> None:
    stubs = harness.stubs
    stubs.fail(names.NOTIFY, "webhook answered 500", kind="WebhookError")
    request = harness.request()
    handle = await harness.start(request)
    result = await handle.result()

    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert (result.version, result.promoted) == (1, True)
    assert stubs.order() == PIPELINE
    assert stubs.only_request(names.NOTIFY).outcome == "succeeded"
    assert (await harness.progress(handle)).stage == "succeeded"
