"""Test-only workflows that run one stage's activity through a real Temporal worker.

Registered only on workers that tests and ``bench/recovery.py`` create themselves:

* :class:`TrainOnlyWorkflow` runs ``train`` by name on a GPU queue with a retry policy, and
  its ``stop_early`` signal runs ``write_control`` on the CPU queue, as the retrain pipeline
  does;
* :class:`PublishWorkflow` runs ``publish`` with retries, as RetrainWorkflow does;
* :class:`EvaluateWorkflow` runs ``evaluate`` once, on the workflow's own task queue.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.evaluation import EvaluateRequest, EvaluateResult
    from activities.contracts.registry import PublishRequest, PublishResult
    from activities.contracts.training import (
        TrainRequest,
        TrainResult,
        WriteControlRequest,
        WriteControlResult,
    )

NON_RETRYABLE = ["BadInputError", "ConfigurationError", "IntegrityError", "NotFoundError"]
_PUBLISH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)


class TrainOnlyParams(BaseModel):
    """Not a Contract on purpose: test-only, so it needs no entry in contract_examples."""

    request: TrainRequest
    gpu_queue: str
    cpu_queue: str
    max_attempts: int = 3


@workflow.defn(name="TrainOnlyWorkflow")
class TrainOnlyWorkflow:
    """``train`` alone, cancellable, with ``stop_early`` as the pipeline sends it."""

    @workflow.init
    def __init__(self, params: TrainOnlyParams) -> None:
        self._cpu_queue = params.cpu_queue

    @workflow.run
    async def run(self, params: TrainOnlyParams) -> TrainResult:
        request = params.request
        return await workflow.execute_activity(
            names.TRAIN,
            request,
            result_type=TrainResult,
            task_queue=params.gpu_queue,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200),
                maximum_attempts=params.max_attempts,
                non_retryable_error_types=NON_RETRYABLE,
            ),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    @workflow.signal
    async def stop_early(self, reason: str = "") -> None:
        """Write the stop-early control object, as RetrainWorkflow does on its signal."""
        await workflow.execute_activity(
            names.WRITE_CONTROL,
            WriteControlRequest(run_id=workflow.info().workflow_id, reason=reason),
            result_type=WriteControlResult,
            task_queue=self._cpu_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )


@workflow.defn(name="TestPublishWorkflow")
class PublishWorkflow:
    """Publish with retries, as RetrainWorkflow does."""

    @workflow.run
    async def run(self, request: PublishRequest) -> PublishResult:
        return await workflow.execute_activity(
            names.PUBLISH,
            request,
            result_type=PublishResult,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_PUBLISH_RETRY,
        )


@workflow.defn(name="TestEvaluateWorkflow")
class EvaluateWorkflow:
    """Evaluate on the queue named by the workflow's own task queue (GPU queue in production)."""

    @workflow.run
    async def run(self, request: EvaluateRequest) -> EvaluateResult:
        return await workflow.execute_activity(
            names.EVALUATE,
            request,
            result_type=EvaluateResult,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
