"""The pretrained-weights catalog as short workflows: backend code and the CLI need only
Temporal access (plus, to upload a file, the S3 settings of ``workflows/client/uploads.py``),
and every addition is recorded in Temporal's history."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.weights import (
        AddWeightsRequest,
        AddWeightsResult,
        InspectWeightsRequest,
        InspectWeightsResult,
        ListWeightsRequest,
        ListWeightsResult,
        RecordWeightsRequest,
    )

_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10))

R = TypeVar("R")


async def _catalog_activity(
    activity: str, request: object, result_type: type[R], timeout: timedelta
) -> R:
    """Run one catalog activity (on the workflow's task queue) with the shared retries."""
    result: R = await workflow.execute_activity(
        activity,
        request,
        result_type=result_type,
        start_to_close_timeout=timeout,
        retry_policy=_RETRY,
    )
    return result


@workflow.defn(name=names.ADD_WEIGHTS_WORKFLOW)
class AddWeightsWorkflow:
    """Read what uploaded weights are (after verifying them), then record the catalog entry."""

    @workflow.run
    async def run(self, request: AddWeightsRequest) -> AddWeightsResult:
        inspected = await _catalog_activity(
            names.INSPECT_WEIGHTS,
            InspectWeightsRequest(weights=request.weights),
            InspectWeightsResult,
            timedelta(minutes=30),
        )
        return await _catalog_activity(
            names.RECORD_WEIGHTS,
            RecordWeightsRequest(entry=request, inspected=inspected),
            AddWeightsResult,
            timedelta(minutes=5),
        )


@workflow.defn(name=names.LIST_WEIGHTS_WORKFLOW)
class ListWeightsWorkflow:
    """The catalog's entries, by name."""

    @workflow.run
    async def run(self, request: ListWeightsRequest) -> ListWeightsResult:
        return await _catalog_activity(
            names.LIST_WEIGHTS, request, ListWeightsResult, timedelta(minutes=5)
        )
