"""Test-only workflows that run issue-5 activities through a real Temporal worker."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.evaluation import EvaluateRequest, EvaluateResult
    from activities.contracts.registry import PublishRequest, PublishResult

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)


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
            retry_policy=_RETRY,
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
