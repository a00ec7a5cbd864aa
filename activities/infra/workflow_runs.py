"""What Temporal says about a workflow run, asked from a sync activity's thread.

Sync activities run in worker threads without a client of their own; the worker hands them
this lookup, built on its client and event loop (as :mod:`activities.training.progress` does
for signals). Retention uses it to leave the objects of running workflows alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.infra.errors import TemporalLookupError


@dataclass(frozen=True)
class RunState:
    """One workflow run as Temporal describes it."""

    workflow_id: str
    run_id: str
    status: str  # WorkflowExecutionStatus name: RUNNING, COMPLETED, FAILED, CANCELED, ...
    close_time: datetime | None

    @property
    def running(self) -> bool:
        return self.status == WorkflowExecutionStatus.RUNNING.name

    @property
    def completed(self) -> bool:
        return self.status == WorkflowExecutionStatus.COMPLETED.name


class WorkflowRuns:
    """``describe(workflow_id, run_id=None)`` from any thread, through the worker's client."""

    def __init__(
        self, client: Client, loop: asyncio.AbstractEventLoop, timeout_seconds: float = 30.0
    ) -> None:
        self.client = client
        self.loop = loop
        self.timeout_seconds = timeout_seconds

    async def _describe(self, workflow_id: str, run_id: str | None) -> RunState | None:
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            description = await handle.describe()
        except RPCError as exc:
            # No such workflow, or ids that cannot name one (a malformed run id): not running.
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise
        return RunState(
            workflow_id=workflow_id,
            run_id=description.run_id,
            status=description.status.name if description.status else "UNKNOWN",
            close_time=description.close_time,
        )

    def describe(self, workflow_id: str, run_id: str | None = None) -> RunState | None:
        """The latest run of ``workflow_id`` (or run ``run_id``); None when Temporal has no
        such workflow (never started here, or its history already deleted by retention).

        Temporal failing to answer is a :class:`TemporalLookupError` (retryable).
        """
        future = asyncio.run_coroutine_threadsafe(self._describe(workflow_id, run_id), self.loop)
        try:
            return future.result(self.timeout_seconds)
        except RPCError as exc:
            raise TemporalLookupError(
                f"Temporal could not describe {workflow_id}: {exc.message}"
            ) from exc
        except TimeoutError as exc:
            future.cancel()
            raise TemporalLookupError(f"Temporal did not describe {workflow_id} in time") from exc
