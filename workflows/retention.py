"""Retention as a short workflow: ``sentinel registry gc`` and its optional Schedule need only
Temporal access, and every sweep (with what it deleted) is recorded in Temporal's history."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.retention import GcRequest, GcResult

GC_SCHEDULE_ID = "sentinel-gc"
"""The id of the optional Schedule that runs a sweep every interval (``registry gc-schedule``)."""


@workflow.defn(name=names.GC_WORKFLOW)
class GarbageCollectionWorkflow:
    """One sweep of the runs and models buckets (``dry_run``: only say what would go)."""

    @workflow.run
    async def run(self, request: GcRequest) -> GcResult:
        result: GcResult = await workflow.execute_activity(
            names.COLLECT_GARBAGE,
            request,
            result_type=GcResult,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(minutes=1)),
        )
        return result
