"""RetrainWorkflow's unhappy paths on stub activities: bad input raised by each stage, a cancel
in each stage before publishing, a cancel during publishing, a failing notification."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import names
from activities.contracts.retrain import ApprovalPolicy
from tests.workflows.harness import Harness
from tests.workflows.stubs import PIPELINE, gate_of, stub_evaluation

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
    assert (result.version, result.promoted, result.reason) == (1, True, gate.reason)
    assert stubs.order() == PIPELINE
    assert len(stubs.calls_of(names.PUBLISH)) == 1
    assert not stubs.was_cancelled(names.PUBLISH)  # shielded: the cancel never reached it
    notify = stubs.only_request(names.NOTIFY)
    assert (notify.outcome, notify.version, notify.promoted) == ("succeeded", 1, True)
    assert notify.reason == (
        f"{gate.reason} (a cancel arrived during publish; the version was completed)"
    )
    assert (await harness.progress(handle)).stage == "succeeded"


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
