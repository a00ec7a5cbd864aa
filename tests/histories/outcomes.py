"""Every outcome a recorded history must cover: how it is produced, what its history must show
(:mod:`tests.histories.facts`).

Most outcomes are produced by the real workflows on the real Temporal dev server against the
stub activities of ``tests/workflows`` (:mod:`tests.histories.scripts`): a history records the
workflow's commands and the events it met, which is what replay checks, so stubs are as good
as real activities here. One outcome needs more: ``retrain-resumed-after-worker-kill`` runs its
first worker as a separate process and SIGKILLs it during training (:mod:`tests.histories.kill`).
One history, ``retrain_promoted_v1``, comes from a real run (real training, real S3:
``tests/integration/test_retrain.py`` with ``SENTINEL_RECORD_HISTORY=1``); the script does not
re-record it, nor ``predict_pytorch_compared`` (a real batch prediction comparing two
versions, ``tests/integration/test_predict.py``). Nor
``retrain-class-collapse-approved-before-per-class-gate`` (generation ``2026-12-02``):
recorded on stub activities by the workflow code of commit 45c04ac, before the per-class rule
and the approval notification, it proves both are guarded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from activities.contracts import names
from activities.contracts.registry import ListVersionsRequest, ShowVersionRequest
from tests.histories import scripts
from tests.histories.facts import Facts
from tests.histories.kill import resumed_after_worker_kill
from tests.histories.scripts import Script, canceled_in, decided, registry_op
from tests.workflows.stubs import PIPELINE
from workflows import patches
from workflows.registry_ops import (
    ListVersionsWorkflow,
    PromoteVersionWorkflow,
    RollbackProductionWorkflow,
    ShowVersionWorkflow,
)


@dataclass(frozen=True)
class Outcome:
    """One outcome: its file name, how it is produced, what its history shows."""

    name: str
    workflow: str
    shows: Callable[[Facts], bool]
    script: Script | None  # None: recorded elsewhere (a real run)
    own_workers: bool = False  # the script starts (and kills) workers itself
    how: str = "stub activities"


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
    Outcome(
        "retrain_cancel_while_notifying",
        RETRAIN,
        lambda f: f.cancel_requested and _completed_with(True)(f),
        None,
        how="real run (tests/faults, cancel racing the notification after publish)",
    ),
    Outcome(
        "retrain_canceled_while_notifying_before_patch",
        RETRAIN,
        lambda f: f.cancel_requested and f.ended == "canceled" and "publish" in f.activities,
        None,
        how="stub activities, by the code before the cancel-after-publish patch",
    ),
    Outcome("retrain-promoted", RETRAIN, _completed_with(True), scripts.promoted),
    Outcome("retrain-not-promoted", RETRAIN, _completed_with(False), scripts.not_promoted),
    Outcome(
        "retrain-parity-blocked", RETRAIN, _reason_has("ONNX parity failed"), scripts.parity_blocked
    ),
    Outcome(
        "retrain-class-collapse-refused",
        RETRAIN,
        lambda f: (
            _completed_with(False)(f)
            and _reason_has("class 'square' AP50-95")(f)
            and patches.PER_CLASS_GATE in f.patches
        ),
        scripts.class_collapse_refused,
    ),
    Outcome(
        "retrain-class-collapse-approved-before-per-class-gate",
        RETRAIN,
        lambda f: (
            f.updates == [names.APPROVE_UPDATE]
            and _completed_with(True)(f)
            and patches.PER_CLASS_GATE not in f.patches
        ),
        None,
        how="stub activities, the code of 45c04ac (before the per-class rule and approval notice)",
    ),
    Outcome(
        "retrain-approved",
        RETRAIN,
        lambda f: f.updates == [names.APPROVE_UPDATE] and (f.result or {}).get("promoted") is True,
        decided(names.APPROVE_UPDATE),
    ),
    Outcome(
        "retrain-rejected",
        RETRAIN,
        lambda f: f.updates == [names.REJECT_UPDATE] and (f.result or {}).get("promoted") is False,
        decided(names.REJECT_UPDATE),
    ),
    Outcome(
        "retrain-approval-timed-out",
        RETRAIN,
        lambda f: f.timers_fired == 1 and not f.updates and _reason_has("timed out")(f),
        decided(None, timeout=1),
    ),
    *[
        Outcome(
            f"retrain-canceled-{stage.replace('_', '-')}",
            RETRAIN,
            _canceled_after(held),
            canceled_in(stage, held),
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
        scripts.cancel_during_publish,
    ),
    Outcome(
        "retrain-failed-bad-input",
        RETRAIN,
        lambda f: f.ended == "failed" and f.failure_types[:1] == ["BadInputError"],
        scripts.failed_bad_input,
    ),
    Outcome(
        "retrain-stop-early",
        RETRAIN,
        lambda f: (
            names.STOP_EARLY_SIGNAL in f.signals
            and names.WRITE_CONTROL in f.activities
            and (f.result or {}).get("stopped_early") is True
        ),
        scripts.stop_early,
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
        scripts.notify_failed,
    ),
    Outcome(
        "controller-below-threshold",
        names.CONTROLLER_WORKFLOW,
        lambda f: f.ended == "completed" and not f.children,
        scripts.controller_below_threshold,
    ),
    Outcome(
        "controller-started-retrain",
        names.CONTROLLER_WORKFLOW,
        lambda f: f.children == [RETRAIN] and (f.result or {}).get("started") is True,
        scripts.controller_started_retrain,
    ),
    Outcome(
        "controller-retrain-already-running",
        names.CONTROLLER_WORKFLOW,
        lambda f: f.children_refused == 1 and (f.result or {}).get("started") is False,
        scripts.controller_retrain_already_running,
    ),
    Outcome(
        "registry-promote",
        names.PROMOTE_VERSION_WORKFLOW,
        lambda f: f.ended == "completed",
        registry_op(PromoteVersionWorkflow.run, scripts.promote_request),
    ),
    Outcome(
        "registry-promote-refused",
        names.PROMOTE_VERSION_WORKFLOW,
        lambda f: f.ended == "failed" and "ProductionMovedError" in f.failure_types,
        registry_op(
            PromoteVersionWorkflow.run, scripts.promote_request, fails=names.PROMOTE_VERSION
        ),
    ),
    Outcome(
        "registry-rollback",
        names.ROLLBACK_PRODUCTION_WORKFLOW,
        lambda f: f.ended == "completed",
        registry_op(RollbackProductionWorkflow.run, scripts.rollback_request),
    ),
    Outcome(
        "registry-list",
        names.LIST_VERSIONS_WORKFLOW,
        lambda f: f.ended == "completed",
        registry_op(ListVersionsWorkflow.run, lambda: ListVersionsRequest(model="parts")),
    ),
    Outcome(
        "registry-show",
        names.SHOW_VERSION_WORKFLOW,
        lambda f: f.ended == "completed",
        registry_op(ShowVersionWorkflow.run, lambda: ShowVersionRequest(model="parts")),
    ),
    Outcome(
        "predict_pytorch_compared",
        names.PREDICT_WORKFLOW,
        lambda f: (
            f.ended == "completed"
            and f.activities[0] == names.PLAN_PREDICTION
            and f.activities[-1] == names.FINISH_PREDICTION
            and (f.result or {}).get("compare_version") is not None
        ),
        None,
        how="real run (tests/integration/test_predict.py with SENTINEL_RECORD_HISTORY=1)",
    ),
]
"""Every outcome, by file name (``tests/histories/<generation>/<name>.json``)."""

BY_NAME = {outcome.name: outcome for outcome in OUTCOMES}
