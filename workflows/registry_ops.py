"""Registry operations as short workflows: backend code needs only Temporal access (no S3
credentials), and every promote or rollback is recorded in Temporal's history."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.integrity import VerifyModelRequest, VerifyModelResult
    from activities.contracts.registry import (
        DownloadLinksRequest,
        DownloadLinksResult,
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

R = TypeVar("R")


async def _registry_activity(activity: str, request: object, result_type: type[R]) -> R:
    """Run one registry activity (on the workflow's task queue) with the shared retries."""
    result: R = await workflow.execute_activity(
        activity,
        request,
        result_type=result_type,
        start_to_close_timeout=_TIMEOUT,
        retry_policy=_RETRY,
    )
    return result


@workflow.defn(name=names.LIST_VERSIONS_WORKFLOW)
class ListVersionsWorkflow:
    """Versions of a model, newest first, with where the aliases point."""

    @workflow.run
    async def run(self, request: ListVersionsRequest) -> ListVersionsResult:
        return await _registry_activity(names.LIST_VERSIONS, request, ListVersionsResult)


@workflow.defn(name=names.SHOW_VERSION_WORKFLOW)
class ShowVersionWorkflow:
    """The metadata of one version (or of the one an alias points to)."""

    @workflow.run
    async def run(self, request: ShowVersionRequest) -> ShowVersionResult:
        return await _registry_activity(names.SHOW_VERSION, request, ShowVersionResult)


@workflow.defn(name=names.PROMOTE_VERSION_WORKFLOW)
class PromoteVersionWorkflow:
    """Point production at a given version (recorded in the alias history)."""

    @workflow.run
    async def run(self, request: PromoteVersionRequest) -> PromoteVersionResult:
        return await _registry_activity(names.PROMOTE_VERSION, request, PromoteVersionResult)


@workflow.defn(name=names.ROLLBACK_PRODUCTION_WORKFLOW)
class RollbackProductionWorkflow:
    """Move production back to the version it replaced."""

    @workflow.run
    async def run(self, request: RollbackRequest) -> RollbackResult:
        return await _registry_activity(names.ROLLBACK_PRODUCTION, request, RollbackResult)


@workflow.defn(name=names.DOWNLOAD_LINKS_WORKFLOW)
class DownloadLinksWorkflow:
    """Time-limited download links to a version's model file or report, with their digests.

    The links are short-lived and read-only; whoever can read this history could start the
    workflow themselves, so they grant nothing new (the S3 keys never leave the workers).
    """

    @workflow.run
    async def run(self, request: DownloadLinksRequest) -> DownloadLinksResult:
        return await _registry_activity(names.DOWNLOAD_LINKS, request, DownloadLinksResult)


@workflow.defn(name=names.VERIFY_MODEL_WORKFLOW)
class VerifyModelWorkflow:
    """Check every signature and every file of a model (``sentinel models verify``)."""

    @workflow.run
    async def run(self, request: VerifyModelRequest) -> VerifyModelResult:
        result: VerifyModelResult = await workflow.execute_activity(
            names.VERIFY_MODEL,
            request,
            result_type=VerifyModelResult,
            start_to_close_timeout=timedelta(hours=2),  # every file of every version, hashed
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
        )
        return result
