"""Batch prediction in the typed client: start, follow, stop and cancel PredictWorkflow runs.

Mixed into :class:`workflows.client.api.SentinelClient`::

    workflow_id = await sentinel.start_prediction(
        PredictRequest(model="detector", source=ImageSource(prefix="incoming/today"),
                       out="predictions/today")
    )  # predict-predictions:today
    print((await sentinel.prediction_progress(workflow_id)).images_done)
    result = await sentinel.prediction_result(workflow_id)   # summary, manifest key, ranking
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.contracts import names
from activities.contracts.predict import PredictProgress, PredictRequest, PredictResult
from activities.infra.settings import Settings
from workflows.client.errors import (
    MAX_REQUEST_BYTES,
    PredictionAlreadyRunningError,
    RequestTooLargeError,
)
from workflows.predict import PredictWorkflow, workflow_id_for


class PredictionOperations:
    """The prediction half of the client (needs ``self.client`` and ``self.settings``)."""

    client: Client
    settings: Settings

    def prediction_with_queues(self, request: PredictRequest) -> PredictRequest:
        """``request`` routed to this deployment's task queues."""
        return request.model_copy(
            update={
                "cpu_task_queue": self.settings.cpu_task_queue,
                "gpu_task_queue": self.settings.gpu_task_queue,
            }
        )

    async def start_prediction(self, request: PredictRequest, *, attach: bool = False) -> str:
        """Start a prediction run; returns its workflow id (one per output prefix).

        A run writing to the same ``out`` raises :class:`PredictionAlreadyRunningError`, or,
        with ``attach``, returns the running one's id.
        """
        workflow_id = workflow_id_for(request.out)
        size = len(request.model_dump_json())
        if size > MAX_REQUEST_BYTES:
            raise RequestTooLargeError(size)
        try:
            await self.client.start_workflow(
                PredictWorkflow.run,
                self.prediction_with_queues(request),
                id=workflow_id,
                task_queue=self.settings.cpu_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError as exc:
            if attach:
                return workflow_id
            raise PredictionAlreadyRunningError(request.out, workflow_id, exc.run_id) from None
        return workflow_id

    def prediction_handle(self, workflow_id: str) -> WorkflowHandle[PredictWorkflow, PredictResult]:
        """The handle of the latest run with this id (see :func:`prediction_id`)."""
        return self.client.get_workflow_handle_for(PredictWorkflow.run, workflow_id)

    async def prediction_progress(self, workflow_id: str) -> PredictProgress:
        """Stage, shards and images done, throughput (a cheap query)."""
        progress: PredictProgress = await self.prediction_handle(workflow_id).query(
            names.PROGRESS_QUERY, result_type=PredictProgress
        )
        return progress

    async def prediction_result(self, workflow_id: str) -> PredictResult:
        """Wait for the run to end; raises if it failed or was canceled."""
        return await self.prediction_handle(workflow_id).result()

    async def stop_prediction(self, workflow_id: str) -> None:
        """Finish the running shards, start no more, write the outputs of what was predicted."""
        await self.prediction_handle(workflow_id).signal(names.STOP_EARLY_SIGNAL)

    async def cancel_prediction(self, workflow_id: str) -> None:
        """Cancel: the running shards stop, no outputs are written."""
        await self.prediction_handle(workflow_id).cancel()


def prediction_id(out: str) -> str:
    """The workflow id of the prediction run writing to ``out``."""
    return workflow_id_for(out)
