"""Typed async API for backend code: start and follow retrains, manage model versions, run
batch predictions (:mod:`workflows.client.predict_api`), sweep what finished runs left
(:mod:`workflows.client.api_retention`).

from workflows.client import SentinelClient
sentinel = await SentinelClient.connect()            # settings from SENTINEL_* env
run_id = await sentinel.start_retrain(request)
print((await sentinel.progress("detector")).stage)

One class is the whole typed API backend code sees; areas with their own state live in mixins
(controller, retention, weights, downloads, prediction).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest
from activities.contracts.inspection import (
    DatasetValidation,
    TrainingLogRequest,
    TrainingLogResult,
)
from activities.contracts.integrity import VerifyModelRequest, VerifyModelResult
from activities.contracts.registry import (
    ExpectedProduction,
    ListVersionsRequest,
    ListVersionsResult,
    PromoteVersionRequest,
    PromoteVersionResult,
    RollbackRequest,
    RollbackResult,
    ShowVersionRequest,
    ShowVersionResult,
)
from activities.contracts.retrain import ApprovalDecision, Progress, RetrainRequest, RetrainResult
from activities.infra.connection import connect
from activities.infra.settings import Settings
from workflows.client.api_controller import ControllerOps
from workflows.client.api_retention import RetentionOps
from workflows.client.api_weights import WeightsOps
from workflows.client.downloads import RegistryDownloads
from workflows.client.errors import (
    MAX_REQUEST_BYTES,
    RequestTooLargeError,
    RetrainAlreadyRunningError,
    RetrainNotRunningError,
)
from workflows.client.live import RunSummary, list_runs, live_progress
from workflows.client.predict_api import PredictionOperations
from workflows.inspection import TrainingLogWorkflow, ValidateDatasetWorkflow
from workflows.registry_ops import (
    ListVersionsWorkflow,
    PromoteVersionWorkflow,
    RollbackProductionWorkflow,
    ShowVersionWorkflow,
    VerifyModelWorkflow,
)
from workflows.retrain import RetrainWorkflow, workflow_id_for
from workflows.retrain_story import retrain_details, retrain_summary

__all__ = ["RunSummary", "SentinelClient", "VersionAlias"]

WorkflowT = TypeVar("WorkflowT")
RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")

VersionAlias = Literal["production", "latest"]
"""The aliases :meth:`SentinelClient.show_version` resolves (``ShowVersionRequest.alias``)."""


class SentinelClient(
    ControllerOps, RetentionOps, WeightsOps, RegistryDownloads, PredictionOperations
):
    """Start, follow, steer and cancel retrains; list, show, promote and roll back versions;
    import a model, add and list pretrained weights (:class:`WeightsOps`); pull model files and
    reports, verified (:class:`~workflows.client.downloads.RegistryDownloads`); start, follow,
    stop and cancel batch predictions (:class:`PredictionOperations`); apply, trigger, pause and
    resume the controller's schedule (:class:`~workflows.client.api_controller.ControllerOps`)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> SentinelClient:
        """Connect using ``settings`` (default: from the ``SENTINEL_*`` environment)."""
        settings = settings or Settings()
        return cls(await connect(settings), settings)

    # ------------------------------------------------------------------ retrains
    async def start_retrain(self, request: RetrainRequest, *, attach: bool = False) -> str:
        """Start a retrain; returns its workflow id (``retrain-{model}``).

        A retrain already running for the model raises :class:`RetrainAlreadyRunningError`,
        or, with ``attach``, returns the running one's id. A request whose JSON exceeds
        :data:`MAX_REQUEST_BYTES` raises :class:`RequestTooLargeError`.
        """
        workflow_id = workflow_id_for(request.model_name)
        size = len(request.model_dump_json())
        if size > MAX_REQUEST_BYTES:
            raise RequestTooLargeError(size)
        try:
            await self.client.start_workflow(
                RetrainWorkflow.run,
                self.with_queues(request),
                id=workflow_id,
                task_queue=self.settings.cpu_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=retrain_summary(request),
                static_details=retrain_details(request),
            )
        except WorkflowAlreadyStartedError as exc:
            if attach:
                return workflow_id
            raise RetrainAlreadyRunningError(request.model_name, workflow_id, exc.run_id) from None
        return workflow_id

    def handle(self, model_name: str) -> WorkflowHandle[RetrainWorkflow, RetrainResult]:
        """The handle of the latest retrain of ``model_name``."""
        return self.client.get_workflow_handle_for(RetrainWorkflow.run, workflow_id_for(model_name))

    async def progress(self, model_name: str) -> Progress:
        """Stage, epoch, metrics, counts, ETA of the latest retrain (a cheap query; while
        training, epoch, metrics and ETA come from the training's latest heartbeat)."""
        return await live_progress(self.client, self.handle(model_name))

    async def status(self, model_name: str) -> WorkflowExecutionStatus | None:
        description = await self.handle(model_name).describe()
        return description.status

    async def result(self, model_name: str) -> RetrainResult:
        """Wait for the latest retrain to end; raises if it failed or was canceled."""
        return await self.handle(model_name).result()

    async def stop_early(self, model_name: str) -> None:
        """Finish training after the current epoch; the pipeline continues."""
        await self.handle(model_name).signal(names.STOP_EARLY_SIGNAL)

    async def approve(self, model_name: str, by: str, comment: str = "") -> str:
        """Approve the pending promotion (fails unless the run awaits approval)."""
        answer: str = await self.handle(model_name).execute_update(
            names.APPROVE_UPDATE, ApprovalDecision(by=by, comment=comment), result_type=str
        )
        return answer

    async def reject(self, model_name: str, by: str, comment: str = "") -> str:
        """Reject the pending promotion: the version is registered, production stays."""
        answer: str = await self.handle(model_name).execute_update(
            names.REJECT_UPDATE, ApprovalDecision(by=by, comment=comment), result_type=str
        )
        return answer

    async def cancel(self, model_name: str) -> None:
        """Cancel: training stops, nothing is published, production is untouched.

        Once publishing has begun the run completes instead (publish is the point of no
        return). When no retrain of the model is running (the latest one ended, or there never
        was one) this raises :class:`RetrainNotRunningError` saying so, and changes nothing:
        Temporal itself would silently accept a cancel of a closed run.
        """
        handle = self.handle(model_name)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise RetrainNotRunningError(model_name, handle.id, None) from None
        status = description.status
        if status != WorkflowExecutionStatus.RUNNING:
            raise RetrainNotRunningError(model_name, handle.id, status.name if status else None)
        # Exactly the run described: never a newer one started in between.
        await self.client.get_workflow_handle(handle.id, run_id=description.run_id).cancel()

    async def list_runs(self, limit: int = 20) -> list[RunSummary]:
        """Recent retrains, newest first, with stage, epoch and version."""
        return await list_runs(self.client, limit)

    async def training_log(
        self, model_name: str, attempt: int | None = None, max_bytes: int = 256 * 1024
    ) -> TrainingLogResult:
        """The latest retrain's training log (one attempt, default the latest; its tail)."""
        request = TrainingLogRequest(
            workflow_id=workflow_id_for(model_name), attempt=attempt, max_bytes=max_bytes
        )
        return await self._registry_op(TrainingLogWorkflow.run, request, f"logs-{model_name}")

    async def validate_dataset(self, request: AssembleRequest) -> DatasetValidation:
        """What an assembly of ``request`` would find; stores nothing (``can_train`` says)."""
        return await self._registry_op(
            ValidateDatasetWorkflow.run, request, f"validate-{request.dataset}"
        )

    # ------------------------------------------------------------------ registry
    async def _registry_op(
        self,
        workflow: MethodAsyncSingleParam[WorkflowT, RequestT, ResultT],
        request: RequestT,
        prefix: str = "",
        *,
        workflow_id: str | None = None,
    ) -> ResultT:
        """Run a short workflow on the CPU queue: id ``workflow_id``, else ``{prefix}-{random}``."""
        return await self.client.execute_workflow(
            workflow,
            request,
            id=workflow_id or f"{prefix}-{uuid.uuid4().hex[:12]}",
            task_queue=self.settings.cpu_task_queue,
        )

    async def list_versions(self, model_name: str, limit: int = 50) -> ListVersionsResult:
        request = ListVersionsRequest(model=model_name, limit=limit)
        result = await self._registry_op(
            ListVersionsWorkflow.run, request, f"versions-{model_name}"
        )
        return result

    async def show_version(
        self, model_name: str, version: int | None = None, alias: VersionAlias = "production"
    ) -> ShowVersionResult:
        request = ShowVersionRequest(model=model_name, version=version, alias=alias)
        return await self._registry_op(ShowVersionWorkflow.run, request, f"show-{model_name}")

    async def verify_model(self, model_name: str, version: int | None = None) -> VerifyModelResult:
        """Check every signature and every file of ``model_name`` (or one version)."""
        request = VerifyModelRequest(model=model_name, version=version)
        return await self._registry_op(VerifyModelWorkflow.run, request, f"verify-{model_name}")

    async def production_version(self, model_name: str) -> int | None:
        """The version production points to now (None: no production version yet)."""
        listing = await self.list_versions(model_name, limit=1)
        return listing.production_version

    async def promote(
        self,
        model_name: str,
        version: int,
        reason: str,
        *,
        expect_production: ExpectedProduction,
    ) -> PromoteVersionResult:
        """Point production at ``version``, only from ``expect_production``.

        ``expect_production`` is the production version the decision was made on (``"none"``:
        there was none; :meth:`production_version` reads it). When production is something
        else by the time of the move, nothing moves and the run fails with a
        ``ProductionMovedError`` naming the current version.
        """
        request_id = f"promote-{model_name}-{uuid.uuid4().hex[:12]}"
        request = PromoteVersionRequest(
            model=model_name,
            version=version,
            reason=reason,
            request_id=request_id,
            requested_at=datetime.now(UTC),
            expected_production=expect_production,
        )
        # The request id is also the workflow id: the alias history names the run that moved it.
        return await self._registry_op(PromoteVersionWorkflow.run, request, workflow_id=request_id)

    async def rollback(
        self, model_name: str, reason: str, *, expect_production: int
    ) -> RollbackResult:
        """Move production one step back from ``expect_production`` (the version seen).

        Two rollbacks from the same version move production back once: the second fails
        with a ``ProductionMovedError`` naming the version the first one left.
        """
        request_id = f"rollback-{model_name}-{uuid.uuid4().hex[:12]}"
        request = RollbackRequest(
            model=model_name,
            reason=reason,
            request_id=request_id,
            requested_at=datetime.now(UTC),
            expected_production=expect_production,
        )
        # The request id is also the workflow id: the alias history names the run that moved it.
        return await self._registry_op(
            RollbackProductionWorkflow.run, request, workflow_id=request_id
        )
