"""RetrainWorkflow on stub activities: the per-class rule decides, and notifications point at
the evidence (the report once published, the evaluation's pictures while approval waits)."""

from __future__ import annotations

import json

import pytest

from activities.contracts import names
from activities.contracts.gate import GatePolicy
from activities.contracts.retrain import ApprovalDecision, ApprovalPolicy
from tests.helpers import factories
from tests.workflows.harness import Harness
from tests.workflows.stubs import APPROVAL_PIPELINE, PIPELINE, gate_of, stub_evaluation
from workflows import patches

pytestmark = pytest.mark.timeout(60)


async def patches_of(handle: object) -> list[str]:
    """The patch ids ``workflow.patched`` recorded in a run's history."""
    history = await handle.fetch_history()  # type: ignore[attr-defined]
    found = []
    for event in history.events:
        attributes = event.marker_recorded_event_attributes
        if attributes.marker_name == "core_patch":
            patch = json.loads(attributes.details["patch-data"].payloads[0].data)
            found.append(patch["id"])
    return found


@pytest.mark.parametrize("approval_required", [False, True], ids=["no-approval", "approval"])
async def test_a_collapsed_class_refuses_promotion_naming_it_and_never_waits_for_approval(
    harness: Harness, approval_required: bool
) -> None:
    stubs = harness.stubs
    request = harness.request(approval=ApprovalPolicy(required=approval_required))
    evaluation = factories.with_class_loss(stub_evaluation(request, 0.7, 0.6, 1))
    stubs.returns(names.EVALUATE, evaluation)
    handle = await harness.start(request)
    result = await handle.result()

    decision = gate_of(request, evaluation)
    assert not decision.promote
    assert decision.reason.startswith("not promoted: class 'square' AP50-95 0.7000 -> 0.1000")
    assert [loss.name for loss in decision.class_losses] == ["square"]
    assert stubs.order() == PIPELINE  # registered, nothing waited for
    assert stubs.only_request(names.PUBLISH).gate == decision
    assert (result.promoted, result.reason, result.production_version) == (
        False,
        decision.reason,
        1,
    )
    notify = stubs.only_request(names.NOTIFY)
    assert (notify.outcome, notify.promoted, notify.reason) == ("succeeded", False, decision.reason)
    final = await harness.progress(handle)
    assert (final.decision, final.approval) == (decision, "not_required")
    assert patches.PER_CLASS_GATE in await patches_of(handle)


async def test_per_class_rule_off_promotes_the_same_candidate(harness: Harness) -> None:
    stubs = harness.stubs
    request = harness.request(gate=GatePolicy(per_class_tolerance=None))
    stubs.returns(names.EVALUATE, factories.with_class_loss(stub_evaluation(request, 0.7, 0.6, 1)))
    result = await (await harness.start(request)).result()
    assert result.promoted and result.reason.startswith("promoted: candidate mAP50-95 0.7000")


async def test_the_end_of_run_notification_names_the_report_and_the_command(
    harness: Harness,
) -> None:
    stubs = harness.stubs
    request = harness.request()
    await (await harness.start(request)).result()

    model = request.model_name
    notify = stubs.only_request(names.NOTIFY)
    assert notify.report == f"s3://sentinel-models/models/{model}/v1/report.md"
    assert notify.report_command == f"sentinel models report {model} --version 1 --out {model}-v1"


async def test_awaiting_approval_notifies_with_the_evaluations_pictures(harness: Harness) -> None:
    stubs = harness.stubs
    request = harness.request(approval=ApprovalPolicy(required=True, timeout_seconds=600))
    evidence = factories.evidence(prefix=f"runs/retrain-{request.model_name}/evaluation/r-1/")
    evaluation = stub_evaluation(request, 0.7, 0.6, 1).model_copy(update={"evidence": evidence})
    stubs.returns(names.EVALUATE, evaluation)
    handle = await harness.start(request)
    await harness.reach_stage(handle, "awaiting_approval")
    await stubs.started(names.NOTIFY)

    asked = stubs.only_request(names.NOTIFY)
    decision = gate_of(request, evaluation)
    assert (asked.outcome, asked.reason, asked.promoted) == (
        "awaiting_approval",
        decision.reason,
        False,
    )
    assert asked.report == f"s3://sentinel-runs/{evidence.prefix}"
    assert asked.metrics == {"map50_95": 0.7, "map50": 1.0}
    await handle.execute_update(names.APPROVE_UPDATE, ApprovalDecision(by="alice"), result_type=str)
    result = await handle.result()

    assert stubs.order() == APPROVAL_PIPELINE and result.promoted
    assert stubs.requests_of(names.NOTIFY)[-1].report is not None
    assert {patches.PER_CLASS_GATE, patches.APPROVAL_NOTICE} <= set(await patches_of(handle))
