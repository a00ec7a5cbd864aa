"""InventoryWorkflow: the smallest end-to-end proof of the stack (Temporal -> worker -> S3)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.inventory import InventoryRequest, InventoryResult


@workflow.defn(name=names.INVENTORY_WORKFLOW)
class InventoryWorkflow:
    """Counts a dataset prefix through one activity on the CPU queue."""

    @workflow.run
    async def run(self, request: InventoryRequest) -> InventoryResult:
        return await workflow.execute_activity(
            names.INVENTORY_DATASET,
            request,
            result_type=InventoryResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30)),
        )
