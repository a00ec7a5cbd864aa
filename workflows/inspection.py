"""Read-only looks as short workflows: validate a dataset, read a run's training log.

Callers (the CLI, backend code) need only Temporal access, never S3 credentials; each look is
one activity on the CPU queue, and its summary says what it looked at in the Temporal UI.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.dataset import AssembleRequest
    from activities.contracts.inspection import (
        DatasetValidation,
        TrainingLogRequest,
        TrainingLogResult,
    )

_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10))


@workflow.defn(name=names.VALIDATE_DATASET_WORKFLOW)
class ValidateDatasetWorkflow:
    """What an assembly would make of a prefix: findings, splits, classes; nothing stored."""

    @workflow.run
    async def run(self, request: AssembleRequest) -> DatasetValidation:
        result: DatasetValidation = await workflow.execute_activity(
            names.VALIDATE_DATASET,
            request,
            result_type=DatasetValidation,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
            summary=f"validate {request.prefix} ({request.format}) as dataset {request.dataset}",
        )
        verdict = "can train" if result.can_train else f"cannot train: {result.problem}"
        workflow.set_current_details(f"{result.usable} usable images; {verdict}"[:1000])
        return result


@workflow.defn(name=names.TRAINING_LOG_WORKFLOW)
class TrainingLogWorkflow:
    """The training log of one attempt of a retrain (default: the latest)."""

    @workflow.run
    async def run(self, request: TrainingLogRequest) -> TrainingLogResult:
        which = f"attempt {request.attempt}" if request.attempt else "latest attempt"
        result: TrainingLogResult = await workflow.execute_activity(
            names.READ_TRAINING_LOG,
            request,
            result_type=TrainingLogResult,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
            summary=f"read the training log of {request.workflow_id} ({which})",
        )
        return result
