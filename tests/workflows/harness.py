"""One workflow test's world: its task queues, stub activities, client and runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from activities.contracts import names
from activities.contracts.retrain import Progress, RetrainRequest, RetrainResult
from tests.helpers.factories import stub_retrain_request
from tests.helpers.polling import eventually
from tests.workflows.stubs import HEARTBEAT_EVERY, Stubs
from workers import wiring
from workflows.retrain import RetrainWorkflow, workflow_id_for


@dataclass
class Harness:
    """One test's queues, stubs and client, and the runs it started."""

    client: Client
    stubs: Stubs
    cpu: str
    gpu: str
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    def request(self, **updates: Any) -> RetrainRequest:
        """A retrain request routed to this test's queues."""
        return stub_retrain_request(self.cpu, self.gpu, **updates)

    async def start(self, request: RetrainRequest) -> WorkflowHandle[Any, RetrainResult]:
        """Start RetrainWorkflow as the client API does (id ``retrain-{model}``)."""
        handle = await self.client.start_workflow(
            RetrainWorkflow.run,
            request,
            id=workflow_id_for(request.model_name),
            task_queue=self.cpu,
            execution_timeout=timedelta(minutes=2),
        )
        self.handles.append(handle)
        return handle

    def track(self, handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, Any]:
        """Remember a run started elsewhere, to terminate it if the test leaves it running."""
        self.handles.append(handle)
        return handle

    async def progress(self, handle: WorkflowHandle[Any, Any]) -> Progress:
        """The ``progress`` query."""
        return await handle.query(names.PROGRESS_QUERY, result_type=Progress)

    async def reach_stage(self, handle: WorkflowHandle[Any, Any], stage: str) -> Progress:
        """Wait until the ``progress`` query shows ``stage``; returns that progress."""

        async def there() -> Progress | None:
            progress = await self.progress(handle)
            return progress if progress.stage == stage else None

        return await eventually(there, timeout=15, interval=0.05, message=f"stage {stage}")

    async def close(self) -> None:
        """Terminate whatever this test left running (so nothing outlives its workers)."""
        for handle in self.handles:
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")


@asynccontextmanager
async def stub_workers(harness: Harness, **options: Any) -> AsyncIterator[None]:
    """The harness's workers while the block runs: on its CPU queue every workflow the product
    registers and the CPU stubs, on its GPU queue the GPU stubs (``workers/wiring.py`` decides
    both). ``options``: more ``Worker`` arguments for both."""
    throttle = timedelta(seconds=HEARTBEAT_EVERY)
    common: dict[str, Any] = {
        "max_heartbeat_throttle_interval": throttle,
        "default_heartbeat_throttle_interval": throttle,
        **options,
    }
    cpu = Worker(
        harness.client,
        task_queue=harness.cpu,
        workflows=wiring.workflows(),
        activities=harness.stubs.cpu_activities(),
        **common,
    )
    gpu = Worker(
        harness.client,
        task_queue=harness.gpu,
        activities=harness.stubs.gpu_activities(),
        **common,
    )
    async with cpu, gpu:
        yield
