"""The retraining controller: a Temporal Schedule runs RetrainCheckWorkflow every interval.

The check counts verified images that production was not trained on; at or above the
threshold it starts RetrainWorkflow as an abandoned child with the same id a person would get
(``retrain-{model}``), so there are never two retrains of one model at once. Pause, resume
and trigger the schedule from the Temporal UI or ``sentinel controller``.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.controller import (
        CheckResult,
        ControllerConfig,
        CountNewRequest,
        CountNewResult,
    )
    from workflows import patches
    from workflows.retrain import RetrainWorkflow, workflow_id_for
    from workflows.retrain_story import retrain_details, retrain_summary


def schedule_id_for(model_name: str) -> str:
    return f"retrain-check-{model_name}"


@workflow.defn(name=names.CONTROLLER_WORKFLOW)
class RetrainCheckWorkflow:
    """One check: enough new verified annotations? Then start a retrain."""

    @workflow.run
    async def run(self, config: ControllerConfig) -> CheckResult:
        request = config.request
        counted: CountNewResult = await workflow.execute_activity(
            names.COUNT_NEW_VERIFIED,
            CountNewRequest(model=request.model_name, dataset=request.dataset),
            result_type=CountNewResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=None,
            retry_policy=RetryPolicy(maximum_attempts=3),
        )

        def checked(started: bool, reason: str, workflow_id: str | None = None) -> CheckResult:
            return CheckResult(
                model=request.model_name,
                new_verified=counted.new_verified,
                threshold=config.threshold,
                started=started,
                workflow_id=workflow_id,
                reason=reason,
            )

        if counted.new_verified < config.threshold:
            return checked(
                False, f"{counted.new_verified} new verified images < threshold {config.threshold}"
            )
        workflow_id = workflow_id_for(request.model_name)
        story = workflow.patched(
            patches.RETRAIN_UI_STORY
        )  # older checks replay without the summary
        try:
            await workflow.start_child_workflow(
                RetrainWorkflow.run,
                request,
                id=workflow_id,
                task_queue=request.cpu_task_queue,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=retrain_summary(request) if story else None,
                static_details=retrain_details(request) if story else None,
            )
        except WorkflowAlreadyStartedError:
            return checked(False, f"a retrain is already running ({workflow_id})", workflow_id)
        return checked(
            True,
            f"{counted.new_verified} new verified images >= threshold {config.threshold}",
            workflow_id,
        )
