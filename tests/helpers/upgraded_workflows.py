"""RetrainWorkflow as a next release might change it, for the upgrade test.

The change: a new step, an ``upgrade_test_audit`` activity, runs before the export. Both
variants register under RetrainWorkflow's own name, as a deploy of new code would:

* :class:`RetrainWithAudit` guards the step with ``workflow.patched(AUDIT_PATCH)``, as
  docs/architecture.md ("Upgrading workflow code") prescribes;
* :class:`RetrainWithUnguardedAudit` does not: the negative control, on which a history
  recorded before the change must fail to replay.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.dataset import SnapshotRef
    from activities.contracts.evaluation import WeightsRef
    from activities.contracts.export import ExportResult
    from activities.contracts.retrain import RetrainRequest, RetrainResult
    from workflows.retrain import RetrainWorkflow

AUDIT_PATCH = "upgrade-test-audit-before-export"
AUDIT_ACTIVITY = "upgrade_test_audit"


class AuditRequest(BaseModel):
    """What the audit step looks at."""

    workflow_id: str
    candidate_key: str


class AuditResult(BaseModel):
    """What the audit step found."""

    passed: bool


async def audit(request: RetrainRequest, candidate: WeightsRef) -> None:
    """The new step: one activity on the CPU queue."""
    await workflow.execute_activity(
        AUDIT_ACTIVITY,
        AuditRequest(workflow_id=workflow.info().workflow_id, candidate_key=candidate.key),
        result_type=AuditResult,
        task_queue=request.cpu_task_queue,
        start_to_close_timeout=timedelta(minutes=1),
    )


@workflow.defn(name=names.RETRAIN_WORKFLOW)
class RetrainWithAudit(RetrainWorkflow):
    """The next release, done right: the new step only where the run had not passed it."""

    @workflow.run
    async def run(self, request: RetrainRequest) -> RetrainResult:
        return await super().run(request)

    async def _export(
        self, request: RetrainRequest, snapshot: SnapshotRef, candidate: WeightsRef
    ) -> ExportResult:
        if workflow.patched(AUDIT_PATCH):
            await audit(request, candidate)
        return await super()._export(request, snapshot, candidate)


@workflow.defn(name=names.RETRAIN_WORKFLOW)
class RetrainWithUnguardedAudit(RetrainWorkflow):
    """The next release, done wrong: the new step for every run, in flight or not."""

    @workflow.run
    async def run(self, request: RetrainRequest) -> RetrainResult:
        return await super().run(request)

    async def _export(
        self, request: RetrainRequest, snapshot: SnapshotRef, candidate: WeightsRef
    ) -> ExportResult:
        await audit(request, candidate)
        return await super()._export(request, snapshot, candidate)
