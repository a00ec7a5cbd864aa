"""The client API of the weights catalog and of model import (mixed into SentinelClient).

sentinel = await SentinelClient.connect()
await sentinel.add_weights(Path("yolo11n.pt"))        # catalog entry weights:yolo11n.pt
weights, name = await sentinel.upload(Path("best.pt"))
await sentinel.import_model(ImportModelRequest(model="detector", weights=weights,
                                               source_file=name, dataset=dataset))  # v1

A local file is uploaded first (:mod:`workflows.client.uploads`, the S3 settings of the
workers); a :class:`WeightsRef` to weights already in storage is used as it is. Everything
else happens in workflows.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.contracts.evaluation import WeightsRef
from activities.contracts.model_import import ImportModelRequest, ImportModelResult
from activities.contracts.weights import (
    AddWeightsRequest,
    AddWeightsResult,
    ListWeightsRequest,
    ListWeightsResult,
)
from activities.infra.settings import Settings
from workflows.catalog_ops import AddWeightsWorkflow, ListWeightsWorkflow
from workflows.client.errors import ImportAlreadyRunningError
from workflows.client.uploads import upload_weights
from workflows.import_model import ImportModelWorkflow, import_workflow_id


class WeightsOps:
    """Catalog and import operations of :class:`~workflows.client.api.SentinelClient`."""

    client: Client
    settings: Settings

    async def upload(self, source: Path | WeightsRef) -> tuple[WeightsRef, str]:
        """``(ref, file name)``: a local file uploaded to its content-addressed key."""
        if isinstance(source, WeightsRef):
            return source, Path(source.key).name
        ref = await asyncio.to_thread(upload_weights, self.settings, source)
        return ref, source.name

    async def add_weights(
        self, source: Path | WeightsRef, name: str | None = None
    ) -> AddWeightsResult:
        """Add weights to the catalog as ``name`` (default: the file name); their task and
        classes are read by a worker. The same bytes again under the same name change nothing;
        other bytes under a taken name are refused."""
        ref, file_name = await self.upload(source)
        request = AddWeightsRequest(
            name=name or file_name,
            weights=ref,
            source_file=file_name,
            added_at=datetime.now(UTC),
        )
        return await self.client.execute_workflow(
            AddWeightsWorkflow.run,
            request,
            id=f"weights-add-{request.name}-{uuid.uuid4().hex[:8]}",
            task_queue=self.settings.cpu_task_queue,
        )

    async def list_weights(self, limit: int = 500) -> ListWeightsResult:
        """The catalog's entries, by name."""
        return await self.client.execute_workflow(
            ListWeightsWorkflow.run,
            ListWeightsRequest(limit=limit),
            id=f"weights-list-{uuid.uuid4().hex[:12]}",
            task_queue=self.settings.cpu_task_queue,
        )

    def import_request(self, request: ImportModelRequest) -> ImportModelRequest:
        """``request`` routed to this deployment's task queues."""
        return request.model_copy(
            update={
                "cpu_task_queue": self.settings.cpu_task_queue,
                "gpu_task_queue": self.settings.gpu_task_queue,
            }
        )

    async def import_model(self, request: ImportModelRequest) -> ImportModelResult:
        """Register ``request.weights`` as the first version of ``request.model``, evaluated on
        a fresh snapshot's test split, in production; waits for the result.

        A running import of the model raises :class:`ImportAlreadyRunningError`; a model that
        has versions already, or weights whose task or classes do not fit the data, fail the
        workflow with a BadInputError naming the problem.
        """
        workflow_id = import_workflow_id(request.model)
        try:
            handle = await self.client.start_workflow(
                ImportModelWorkflow.run,
                self.import_request(request),
                id=workflow_id,
                task_queue=self.settings.cpu_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            raise ImportAlreadyRunningError(request.model, workflow_id) from None
        return await handle.result()
