"""Ids of the ``workflow.patched`` guards in workflow code, and what each one changed.

How workflow code changes without breaking runs in flight: docs/architecture.md, "Upgrading
workflow code"; the release steps: deploy/README.md. In short, a change to what a workflow
does (an activity, timer, child workflow or wait added, removed or reordered, or the condition
of one changed) goes under ``if workflow.patched(patches.NAME):`` with the old code in the
``else`` branch; ``NAME`` is defined here and listed in :data:`PATCHED`, and a new generation
of histories is recorded (``python -m tests.histories.record``). Once no run started before
that release is open, the guard becomes ``workflow.deprecate_patch(patches.NAME)`` followed by
the new code only, and the id moves to :data:`DEPRECATED`; once no run started before *that*
release is open, the call and the id are removed.

``tests/unit/test_workflow_patches.py`` holds the code to this: every guard in ``workflows/``
names a constant from here that is listed in the dictionary of its phase, and every
:data:`PATCHED` id is taken by a recorded history of the newest generation.
"""

from __future__ import annotations

RETRAIN_UI_STORY = "retrain-ui-story-v1"
PER_CLASS_GATE = "per-class-gate"
APPROVAL_NOTICE = "approval-notification"

PATCHED: dict[str, str] = {
    RETRAIN_UI_STORY: (
        "2026-12-02: RetrainWorkflow and the controller set summaries, current details and a "
        "memo for the Temporal UI (activity summaries, upsert_memo); older runs replay without"
    ),
    PER_CLASS_GATE: (
        "2026-12-02: the gate refuses a candidate that loses a class beyond the per-class "
        "tolerance (workflows.gate.protect_classes); older runs replay the decision they made"
    ),
    APPROVAL_NOTICE: (
        "2026-12-02: a webhook notification (outcome awaiting_approval, pointing at the "
        "evaluation's pictures) when a run starts waiting for approval; older runs replay "
        "without it"
    ),
}
"""Guards with both paths in the code: id -> what changed, and in which release."""

DEPRECATED: dict[str, str] = {}
"""Guards left as ``deprecate_patch`` (only the new path): id -> what changed, in which release."""
