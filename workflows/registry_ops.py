"""Registry operations as short workflows: backend code needs only Temporal access (no S3
credentials), and every promote or rollback is recorded in Temporal's history."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.registry import (
        ListVersionsRequest,
        ListVersionsResult,
        PromoteVersionRequest,
        PromoteVersionResult,
        RollbackRequest,
        RollbackResult,
        ShowVersionRequest,
        ShowVersionResult,
    )

_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10))
_TIMEOUT = timedelta(minutes=5)


@workflow.defn(name="ListVersionsWorkflow")
class ListVersionsWorkflow:
    """Versions of a model, newest first, with where the aliases point."""

    @workflow.run
    async def run(self, request: ListVersionsRequest) -> ListVersionsResult:
        return await workflow.execute_activity(
            names.LIST_VERSIONS,
            request,
            result_type=ListVersionsResult,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )


@workflow.defn(name="ShowVersionWorkflow")
class ShowVersionWorkflow:
    """The metadata of one version (or of the one an alias points to)."""

    @workflow.run
    async def run(self, request: ShowVersionRequest) -> ShowVersionResult:
        return await workflow.execute_activity(
            names.SHOW_VERSION,
            request,
            result_type=ShowVersionResult,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )


@workflow.defn(name="PromoteVersionWorkflow")
class PromoteVersionWorkflow:
    """Point production at a given version (recorded in the alias history)."""

    @workflow.run
    async def run(self, request: PromoteVersionRequest) -> PromoteVersionResult:
        return await workflow.execute_activity(
            names.PROMOTE_VERSION,
            request,
            result_type=PromoteVersionResult,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )


@workflow.defn(name="RollbackProductionWorkflow")
class RollbackProductionWorkflow:
    """Move production back to the version it replaced."""

    @workflow.run
    async def run(self, request: RollbackRequest) -> RollbackResult:
        return await workflow.execute_activity(
            names.ROLLBACK_PRODUCTION,
            request,
            result_type=RollbackResult,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
