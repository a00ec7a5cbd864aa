"""The controller (RetrainCheckWorkflow) and the registry-operation workflows on stubs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.contracts import names
from activities.contracts.controller import CheckResult, ControllerConfig, CountNewRequest
from activities.contracts.registry import (
    DownloadLinksRequest,
    ListVersionsRequest,
    PromoteVersionRequest,
    RollbackRequest,
    ShowVersionRequest,
)
from tests.helpers import factories
from tests.workflows.harness import Harness
from tests.workflows.stubs import PIPELINE
from workflows.controller import RetrainCheckWorkflow
from workflows.registry_ops import (
    DownloadLinksWorkflow,
    ListVersionsWorkflow,
    PromoteVersionWorkflow,
    RollbackProductionWorkflow,
    ShowVersionWorkflow,
)
from workflows.retrain import RetrainWorkflow, workflow_id_for

pytestmark = pytest.mark.timeout(60)


async def check(harness: Harness, config: ControllerConfig) -> CheckResult:
    """One scheduled check, as the schedule runs it (on the CPU queue)."""
    handle = await harness.client.start_workflow(
        RetrainCheckWorkflow.run,
        config,
        id=f"check-{uuid.uuid4().hex[:8]}",
        task_queue=harness.cpu,
    )
    return await harness.track(handle).result()


async def test_controller_below_the_threshold_starts_nothing(harness: Harness) -> None:
    request = harness.request()
    harness.stubs.returns(names.COUNT_NEW_VERIFIED, factories.count_new_result(9))
    result = await check(harness, ControllerConfig(request=request, threshold=10))

    assert result == CheckResult(
        model=request.model_name,
        new_verified=9,
        threshold=10,
        started=False,
        workflow_id=None,
        reason="9 new verified images < threshold 10",
    )
    assert harness.stubs.only_request(names.COUNT_NEW_VERIFIED) == CountNewRequest(
        model=request.model_name, dataset=request.dataset
    )
    assert harness.stubs.order() == [names.COUNT_NEW_VERIFIED]
    with pytest.raises(RPCError, match="not found"):
        await harness.client.get_workflow_handle(workflow_id_for(request.model_name)).describe()


async def test_controller_at_the_threshold_starts_the_retrain_once(harness: Harness) -> None:
    stubs = harness.stubs
    request = harness.request()
    workflow_id = workflow_id_for(request.model_name)
    config = ControllerConfig(request=request, threshold=10)
    stubs.returns(names.COUNT_NEW_VERIFIED, factories.count_new_result(10))
    release = stubs.hold(names.ASSEMBLE_DATASET)

    started = await check(harness, config)
    assert started == CheckResult(
        model=request.model_name,
        new_verified=10,
        threshold=10,
        started=True,
        workflow_id=workflow_id,
        reason="10 new verified images >= threshold 10",
    )
    retrain = harness.client.get_workflow_handle_for(RetrainWorkflow.run, workflow_id)
    harness.track(retrain)
    await stubs.started(names.ASSEMBLE_DATASET)
    assert stubs.only_request(names.ASSEMBLE_DATASET) == request.dataset

    # While that retrain runs, a second check never starts another.
    again = await check(harness, config)
    assert (again.started, again.workflow_id) == (False, workflow_id)
    assert again.reason == f"a retrain is already running ({workflow_id})"
    assert len(stubs.calls_of(names.COUNT_NEW_VERIFIED)) == 2

    # The child was abandoned by its check, and runs the whole pipeline on the request's queues.
    release.set()
    result = await retrain.result()
    assert (result.model_name, result.version, result.promoted) == (request.model_name, 1, True)
    assert [n for n in stubs.order() if n != names.COUNT_NEW_VERIFIED] == PIPELINE
    assert (await retrain.describe()).status == WorkflowExecutionStatus.COMPLETED


REGISTRY_OPS = [
    (
        ListVersionsWorkflow.run,
        names.LIST_VERSIONS,
        ListVersionsRequest(model="parts", limit=5),
        factories.list_versions_result("parts"),
    ),
    (
        ShowVersionWorkflow.run,
        names.SHOW_VERSION,
        ShowVersionRequest(model="parts", version=2),
        factories.show_version_result("parts", 2),
    ),
    (
        PromoteVersionWorkflow.run,
        names.PROMOTE_VERSION,
        PromoteVersionRequest(
            model="parts", version=3, reason="hotfix", request_id="cli-1", requested_at=factories.AT
        ),
        factories.promote_version_result("parts", 3),
    ),
    (
        RollbackProductionWorkflow.run,
        names.ROLLBACK_PRODUCTION,
        RollbackRequest(
            model="parts", reason="regression", request_id="cli-2", requested_at=factories.AT
        ),
        factories.rollback_result("parts", 3),
    ),
    (
        DownloadLinksWorkflow.run,
        names.DOWNLOAD_LINKS,
        DownloadLinksRequest(model="parts", version=None, alias="latest", what="model.onnx"),
        factories.download_links_result("parts", 3),
    ),
]


@pytest.mark.parametrize(
    ("run", "activity_name", "request_", "expected"),
    REGISTRY_OPS,
    ids=[name for _, name, _, _ in REGISTRY_OPS],
)
async def test_registry_operation_returns_what_its_activity_returns(
    harness: Harness, run: Any, activity_name: str, request_: Any, expected: Any
) -> None:
    harness.stubs.returns(activity_name, expected)
    handle = await harness.client.start_workflow(
        run, request_, id=f"op-{uuid.uuid4().hex[:8]}", task_queue=harness.cpu
    )
    result = await harness.track(handle).result()

    assert result == expected and type(result) is type(expected)
    (call,) = harness.stubs.calls
    assert (call.name, call.request, call.task_queue) == (activity_name, request_, harness.cpu)
