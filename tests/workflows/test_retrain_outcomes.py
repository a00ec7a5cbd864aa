"""RetrainWorkflow's completed outcomes on stub activities: promoted, refused by the gate,
blocked by ONNX parity, and every approval branch (approved, rejected, timed out)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from activities.contracts import names
from activities.contracts.gate import GatePolicy
from activities.contracts.retrain import ApprovalDecision, ApprovalPolicy, RetrainRequest
from activities.contracts.training import RegistryBase, TrainRequest
from tests.helpers import factories
from tests.workflows.harness import Harness
from tests.workflows.stubs import APPROVAL_PIPELINE, PIPELINE, gate_of, stub_evaluation

pytestmark = pytest.mark.timeout(60)


async def test_promoted_v1_runs_every_stage_once_with_the_right_requests(harness: Harness) -> None:
    stubs = harness.stubs
    request = harness.request()
    handle = await harness.start(request)
    result = await handle.result()

    assert stubs.order() == PIPELINE
    assert {call.name: call.task_queue for call in stubs.calls} == {
        names.ASSEMBLE_DATASET: harness.cpu,
        names.TRAIN: harness.gpu,
        names.EVALUATE: harness.gpu,
        names.EXPORT: harness.cpu,
        names.PUBLISH: harness.cpu,
        names.NOTIFY: harness.cpu,
    }
    snapshot = factories.snapshot_ref(request.dataset.dataset)
    trained = factories.train_result(handle.id, epochs=5)
    candidate = factories.candidate_of(trained)
    evaluation = stub_evaluation(request, 0.6)
    decision = gate_of(request, evaluation)
    assert decision.promote and decision.reason.startswith("promoted: no champion")

    assert stubs.only_request(names.ASSEMBLE_DATASET) == request.dataset
    assert stubs.only_request(names.TRAIN) == TrainRequest(
        snapshot=snapshot,
        model_name=request.model_name,
        base=request.base,
        hyperparameters=request.hyperparameters,
        heartbeat_timeout_seconds=request.train_heartbeat_timeout_seconds,
    )
    evaluate = stubs.only_request(names.EVALUATE)
    assert (evaluate.model, evaluate.snapshot, evaluate.candidate) == (
        request.model_name,
        snapshot,
        candidate,
    )
    assert (evaluate.imgsz, evaluate.device, evaluate.options) == (96, "cpu", request.evaluation)
    export = stubs.only_request(names.EXPORT)
    assert (export.weights, export.snapshot, export.output_prefix) == (
        candidate,
        snapshot,
        f"runs/{handle.id}/export",
    )
    assert (export.imgsz, export.conf, export.iou, export.options) == (
        96,
        request.evaluation.conf,
        request.evaluation.iou,
        request.export,
    )
    publish = stubs.only_request(names.PUBLISH)
    assert (publish.model, publish.workflow_id, publish.run_id) == (
        request.model_name,
        handle.id,
        handle.result_run_id,
    )
    assert publish.candidate == candidate and publish.snapshot == snapshot
    assert publish.export == factories.exported(candidate)
    assert publish.evaluation == evaluation and publish.gate == decision
    assert (publish.parent_version, publish.epochs, publish.resumed_from_epoch) == (None, 5, None)
    assert publish.results_csv_key == trained.results_csv_key
    assert publish.hyperparameters["epochs"] == 5 and publish.hyperparameters["imgsz"] == 96
    notify = stubs.only_request(names.NOTIFY)
    assert (notify.model_name, notify.workflow_id, notify.outcome) == (
        request.model_name,
        handle.id,
        "succeeded",
    )
    assert (notify.version, notify.promoted, notify.reason) == (1, True, decision.reason)
    assert notify.metrics == {"map50_95": 0.6, "map50": evaluation.candidate.map50}

    assert result.model_name == request.model_name
    assert (result.version, result.promoted, result.production_version) == (1, True, 1)
    assert result.reason == decision.reason
    assert (result.candidate_map50_95, result.champion_map50_95, result.champion_version) == (
        0.6,
        None,
        None,
    )
    assert (result.epochs_done, result.stopped_early) == (5, False)
    assert result.snapshot_key == snapshot.key
    assert result.dataset_counts == snapshot.counts
    assert result.artifacts == factories.publish_result(request.model_name).artifacts
    assert result.duration_seconds >= 0

    final = await harness.progress(handle)
    assert (final.stage, final.candidate_version, final.decision) == ("succeeded", 1, decision)
    assert (final.approval, final.error, final.epochs) == ("not_required", None, 5)
    assert final.dataset_counts == snapshot.counts


async def test_v2_is_gated_against_the_production_v1_and_promoted(harness: Harness) -> None:
    stubs = harness.stubs
    model = factories.unique_model()
    request = harness.request(model=model, base=RegistryBase(model=model, version="1"))
    evaluation = stub_evaluation(request, 0.7, 0.6, 1)
    stubs.returns(names.EVALUATE, evaluation)
    stubs.returns(names.PUBLISH, lambda r: factories.published(r, version=2))
    result = await (await harness.start(request)).result()

    decision = gate_of(request, evaluation)
    assert decision.promote and "vs champion v1" in decision.reason
    publish = stubs.only_request(names.PUBLISH)
    assert publish.gate == decision and publish.parent_version == 1
    assert (result.version, result.promoted, result.production_version) == (2, True, 2)
    assert (result.champion_version, result.champion_map50_95) == (1, 0.6)
    assert result.reason == decision.reason
    assert stubs.only_request(names.NOTIFY).reason == decision.reason


@pytest.mark.parametrize("approval_required", [False, True], ids=["no-approval", "approval"])
@pytest.mark.parametrize(
    ("scores", "policy"),
    [((0.5, 0.6, 1), GatePolicy()), ((0.5, None, None), GatePolicy(floor=0.9))],
    ids=["worse-than-champion", "below-floor"],
)
async def test_gate_refusal_registers_without_promoting_and_never_waits_for_approval(
    harness: Harness,
    scores: tuple[float, float | None, int | None],
    policy: GatePolicy,
    approval_required: bool,
) -> None:
    stubs = harness.stubs
    request = harness.request(gate=policy, approval=ApprovalPolicy(required=approval_required))
    evaluation = stub_evaluation(request, *scores)
    stubs.returns(names.EVALUATE, evaluation)
    handle = await harness.start(request)
    result = await handle.result()

    decision = gate_of(request, evaluation)
    assert not decision.promote and decision.reason.startswith("not promoted: ")
    assert stubs.order() == PIPELINE
    assert stubs.only_request(names.PUBLISH).gate == decision
    assert (result.version, result.promoted, result.reason) == (1, False, decision.reason)
    assert result.production_version == evaluation.champion_version
    notify = stubs.only_request(names.NOTIFY)
    assert (notify.outcome, notify.promoted, notify.reason) == ("succeeded", False, decision.reason)
    final = await harness.progress(handle)
    assert (final.stage, final.approval) == ("succeeded", "not_required")


@pytest.mark.parametrize("gate_promotes", [True, False], ids=["gate-promotes", "gate-refuses"])
async def test_parity_failure_blocks_promotion(harness: Harness, gate_promotes: bool) -> None:
    stubs = harness.stubs
    request = harness.request()
    evaluation = stub_evaluation(request, *((0.7, 0.6, 1) if gate_promotes else (0.5, 0.6, 1)))
    stubs.returns(names.EVALUATE, evaluation)
    stubs.returns(names.EXPORT, lambda r: factories.exported(r.weights, passed=False))
    handle = await harness.start(request)
    result = await handle.result()

    gate = gate_of(request, evaluation)
    assert gate.promote is gate_promotes
    parity = factories.parity(False)
    if gate_promotes:
        why = f"ONNX parity failed: {parity.reason}"
        expected = f"not promoted: {why} (gate alone: {gate.reason})"
        assert stubs.only_request(names.PUBLISH).gate == gate.blocked(why)
    else:  # an already refused candidate stays refused for the gate's own reason
        why, expected = None, gate.reason
        assert stubs.only_request(names.PUBLISH).gate == gate
    assert (result.promoted, result.reason, result.production_version) == (False, expected, 1)
    assert stubs.only_request(names.NOTIFY).reason == expected
    final = await harness.progress(handle)
    assert final.decision is not None and final.decision.blocked_by == why


# ---------------------------------------------------------------------- approval
def refusal(error: WorkflowUpdateFailedError) -> str:
    """The message of an update refused by its validator."""
    cause = error.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ValueError", cause
    return cause.message


def approval_request(harness: Harness, **policy: object) -> RetrainRequest:
    return harness.request(approval=ApprovalPolicy(required=True, **policy))  # type: ignore[arg-type]


async def test_approval_approved_by_update_promotes(harness: Harness) -> None:
    stubs = harness.stubs
    request = approval_request(harness, timeout_seconds=600)
    release_training = stubs.hold(names.TRAIN)
    release_export = stubs.hold(names.EXPORT)
    handle = await harness.start(request)
    await stubs.started(names.TRAIN)
    # Too early: nothing to approve while training.
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(
            names.APPROVE_UPDATE, ApprovalDecision(by="early-bird"), result_type=str
        )
    assert refusal(early.value) == "cannot approve: the run is training, approval is not_required"
    release_training.set()

    waiting = await harness.reach_stage(handle, "awaiting_approval")
    gate = gate_of(request, stub_evaluation(request, 0.6))
    assert (waiting.approval, waiting.decision) == ("pending", gate)
    await stubs.started(names.NOTIFY)
    # Nothing exported before the decision; people were asked, with the decision's reason.
    assert stubs.order() == APPROVAL_PIPELINE[:4]
    asked = stubs.only_request(names.NOTIFY)
    assert (asked.outcome, asked.reason, asked.version) == ("awaiting_approval", gate.reason, None)
    answer = await handle.execute_update(
        names.APPROVE_UPDATE, ApprovalDecision(by="alice", comment="ok"), result_type=str
    )
    assert answer == "approved by alice"
    await stubs.started(names.EXPORT)
    # Decided once: a late reject is refused.
    with pytest.raises(WorkflowUpdateFailedError) as late:
        await handle.execute_update(
            names.REJECT_UPDATE, ApprovalDecision(by="mallory"), result_type=str
        )
    assert refusal(late.value) == "cannot reject: the run is exporting, approval is approved"
    release_export.set()
    result = await handle.result()

    assert stubs.order() == APPROVAL_PIPELINE
    assert stubs.only_request(names.PUBLISH).gate == gate
    assert (result.promoted, result.reason, result.production_version) == (True, gate.reason, 1)
    assert (await harness.progress(handle)).approval == "approved"


@pytest.mark.parametrize(
    ("comment", "why"),
    [("looks wrong", "rejected by alice: looks wrong"), ("", "rejected by alice")],
    ids=["with-comment", "without-comment"],
)
async def test_approval_rejected_by_update_registers_without_promoting(
    harness: Harness, comment: str, why: str
) -> None:
    stubs = harness.stubs
    request = approval_request(harness, timeout_seconds=600)
    handle = await harness.start(request)
    await harness.reach_stage(handle, "awaiting_approval")
    answer = await handle.execute_update(
        names.REJECT_UPDATE, ApprovalDecision(by="alice", comment=comment), result_type=str
    )
    assert answer == "rejected by alice"
    result = await handle.result()

    gate = gate_of(request, stub_evaluation(request, 0.6))
    expected = f"not promoted: {why} (gate alone: {gate.reason})"
    assert stubs.order() == APPROVAL_PIPELINE  # still exported and registered
    assert stubs.only_request(names.PUBLISH).gate == gate.blocked(why)
    assert (result.version, result.promoted, result.reason) == (1, False, expected)
    assert result.production_version is None
    notify = stubs.requests_of(names.NOTIFY)[-1]
    assert (notify.outcome, notify.promoted, notify.reason) == ("succeeded", False, expected)
    assert (await harness.progress(handle)).approval == "rejected"


@pytest.mark.parametrize("on_timeout", ["reject", "approve"])
async def test_approval_timeout_applies_the_timeout_action(
    harness: Harness, on_timeout: str
) -> None:
    # A real 1 s timeout: the time-skipping server cannot run offline (see conftest).
    stubs = harness.stubs
    request = approval_request(harness, timeout_seconds=1, on_timeout=on_timeout)
    handle = await harness.start(request)
    result = await handle.result()

    gate = gate_of(request, stub_evaluation(request, 0.6))
    if on_timeout == "approve":
        decision, expected = gate, gate.reason
    else:
        why = "approval timed out after 1s"
        decision, expected = gate.blocked(why), f"not promoted: {why} (gate alone: {gate.reason})"
    assert stubs.order() == APPROVAL_PIPELINE
    assert stubs.only_request(names.PUBLISH).gate == decision
    assert (result.promoted, result.reason) == (on_timeout == "approve", expected)
    assert stubs.requests_of(names.NOTIFY)[-1].reason == expected
    assert (await harness.progress(handle)).approval == "timed_out"
