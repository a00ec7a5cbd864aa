"""RetrainWorkflow end to end on the real stack: real Temporal, real S3, real tiny training."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Replayer

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.contracts.retrain import (
    ApprovalPolicy,
    EvaluationOptions,
    ExportOptions,
    Progress,
    RetrainRequest,
)
from activities.contracts.training import Hyperparameters
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry.core import Registry
from tests.conftest import Queues, RunWorkers
from workers.dev import synthetic
from workflows.client.api import RetrainAlreadyRunningError, SentinelClient
from workflows.retrain import RetrainWorkflow

pytestmark = pytest.mark.timeout(300)
HISTORIES = Path(__file__).resolve().parents[1] / "histories"


@pytest.fixture(scope="module")
def dataset_prefix(settings: Settings, store: ObjectStore) -> str:
    """24 verified synthetic images, uploaded once for the module."""
    prefix = f"datasets/retrain-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=3, verified=True
    )
    return prefix


def make_request(
    prefix: str, queues: Queues, *, epochs: int = 2, model: str | None = None, **updates: object
) -> RetrainRequest:
    """A small, fast request: 64 px, few epochs, few bootstrap resamples."""
    model = model or f"m-{uuid.uuid4().hex[:8]}"
    return RetrainRequest(
        model_name=model,
        dataset=AssembleRequest(
            dataset=model, prefix=prefix, min_counts=MinCounts(train=4, val=1, test=1)
        ),
        hyperparameters=Hyperparameters(
            epochs=epochs,
            imgsz=64,
            batch=4,
            device="cpu",
            workers=0,
            extra={"mosaic": 0.0, "warmup_epochs": 0.0, "nbs": 4},
        ),
        evaluation=EvaluationOptions(bootstrap_resamples=50),
        export=ExportOptions(map_tolerance=0.05),
        cpu_task_queue=queues.cpu,
        gpu_task_queue=queues.gpu,
        **updates,  # type: ignore[arg-type]
    )


def sentinel_for(client: Client, queues: Queues) -> SentinelClient:
    return SentinelClient(client, queues.settings)


async def wait_for_stage(
    sentinel: SentinelClient, model: str, stages: set[str], timeout: float = 120
) -> Progress:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            progress = await sentinel.progress(model)
            if progress.stage in stages:
                return progress
        except Exception:  # not started yet
            pass
        assert asyncio.get_running_loop().time() < deadline, f"never reached {stages}"
        await asyncio.sleep(0.3)


async def test_full_pipeline_publishes_and_promotes_v1(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    request = make_request(dataset_prefix, queues, epochs=3)
    async with run_workers():
        workflow_id = await sentinel.start_retrain(request)
        assert workflow_id == f"retrain-{request.model_name}"
        seen = await wait_for_stage(sentinel, request.model_name, {"training"})
        assert seen.dataset_counts and sum(seen.dataset_counts.values()) == 24
        # A duplicate start while it runs is refused, naming the running workflow.
        with pytest.raises(RetrainAlreadyRunningError, match=workflow_id):
            await sentinel.start_retrain(request)
        assert await sentinel.start_retrain(request, attach=True) == workflow_id
        epochs_seen = set()
        while (progress := await sentinel.progress(request.model_name)).stage == "training":
            epochs_seen.add(progress.epoch)
            await asyncio.sleep(0.2)
        result = await sentinel.result(request.model_name)
        final = await sentinel.progress(request.model_name)  # queries need a worker
    assert max(epochs_seen) >= 1, "progress query never showed a training epoch"
    assert result.version == 1 and result.promoted and result.production_version == 1
    assert result.epochs_done == 3 and result.champion_version is None
    registry = Registry(store, settings.models_bucket)
    assert registry.production_version(request.model_name) == 1
    for key in result.artifacts.values():
        assert store.exists(settings.models_bucket, key), key
    assert final.stage == "succeeded" and final.candidate_version == 1
    # The run replays deterministically on the current code; record it on request so later
    # changes are checked against it (tests/histories/).
    history = await sentinel.handle(request.model_name).fetch_history()
    await Replayer(
        workflows=[RetrainWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)
    if os.environ.get("SENTINEL_RECORD_HISTORY"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / "retrain_promoted_v1.json").write_text(history.to_json())


async def test_stop_early_finishes_with_fewer_epochs(
    client: Client, queues: Queues, run_workers: RunWorkers, dataset_prefix: str
) -> None:
    sentinel = sentinel_for(client, queues)
    request = make_request(dataset_prefix, queues, epochs=30)
    async with run_workers():
        await sentinel.start_retrain(request)
        await wait_for_stage(sentinel, request.model_name, {"training"})
        while (await sentinel.progress(request.model_name)).epoch < 1:
            await asyncio.sleep(0.2)
        await sentinel.stop_early(request.model_name)
        result = await sentinel.result(request.model_name)
    assert result.stopped_early and 1 <= result.epochs_done < 30
    assert result.version == 1


async def test_cancel_publishes_nothing_and_ends_canceled(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    request = make_request(dataset_prefix, queues, epochs=50)
    async with run_workers():
        await sentinel.start_retrain(request)
        await wait_for_stage(sentinel, request.model_name, {"training"})
        await sentinel.cancel(request.model_name)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(sentinel.result(request.model_name), 60)
    assert isinstance(info.value.cause, CancelledError)
    assert await sentinel.status(request.model_name) == WorkflowExecutionStatus.CANCELED
    assert not list(store.list(settings.models_bucket, f"models/{request.model_name}/"))


@pytest.mark.parametrize("verb", ["approve", "reject", "timeout"])
async def test_approval_gates_the_production_alias(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
    verb: str,
) -> None:
    sentinel = sentinel_for(client, queues)
    timeout = 2.0 if verb == "timeout" else 600.0
    request = make_request(
        dataset_prefix,
        queues,
        epochs=1,
        approval=ApprovalPolicy(required=True, timeout_seconds=timeout, on_timeout="reject"),
    )
    async with run_workers():
        await sentinel.start_retrain(request)
        if verb != "timeout":
            with pytest.raises(WorkflowUpdateFailedError) as early:
                await sentinel.approve(request.model_name, by="early-bird")
            assert "cannot approve" in str(early.value.cause)
            await wait_for_stage(sentinel, request.model_name, {"awaiting_approval"}, 240)
            action = sentinel.approve if verb == "approve" else sentinel.reject
            assert verb in await action(request.model_name, by="alice", comment="looks right")
        result = await sentinel.result(request.model_name)
    production = Registry(store, settings.models_bucket).production_version(request.model_name)
    assert result.version == 1
    if verb == "approve":
        assert result.promoted and production == 1
    else:
        assert not result.promoted and production is None
        expected = "rejected by alice" if verb == "reject" else "approval timed out"
        assert expected in result.reason


async def test_bad_input_fails_fast_with_its_message(
    client: Client, queues: Queues, run_workers: RunWorkers
) -> None:
    sentinel = sentinel_for(client, queues)
    request = make_request(f"datasets/missing-{uuid.uuid4().hex[:6]}", queues)
    async with run_workers():
        await sentinel.start_retrain(request)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(sentinel.result(request.model_name), 60)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "BadInputError" and "is empty" in cause.message
    assert "failed while assembling" in cause.message
    description = await sentinel.handle(request.model_name).describe()
    assert description.status == WorkflowExecutionStatus.FAILED


async def test_second_run_is_gated_against_the_first(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    first = make_request(dataset_prefix, queues, epochs=2)
    async with run_workers():
        await sentinel.start_retrain(first)
        v1 = await sentinel.result(first.model_name)
        # Same model, a tiny retrain; must be compared to v1 on the same test split.
        second = make_request(dataset_prefix, queues, epochs=1, model=first.model_name)
        await sentinel.start_retrain(second)
        v2 = await sentinel.result(first.model_name)
        versions = await sentinel.list_versions(first.model_name)  # runs on the workers
    assert (v1.version, v2.version) == (1, 2)
    assert v2.champion_version == 1 and v2.champion_map50_95 is not None
    production = Registry(store, settings.models_bucket).production_version(first.model_name)
    assert production == (2 if v2.promoted else 1)
    assert [v.version for v in versions.versions] == [2, 1]
    assert versions.production_version == production
