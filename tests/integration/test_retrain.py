"""RetrainWorkflow end to end on the real stack: real Temporal, real S3, real tiny training.

Only a few real runs: v1 promoted then v2 gated against it, one cancel, one approval. Every
branch of the workflow's logic (gate refusal, parity block, each approval outcome, bad input
and cancel in each stage, stop early, progress) is covered on stub activities in
``tests/workflows``, in seconds.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer

from activities.contracts.retrain import ApprovalPolicy, Progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.outside import alias, metadata, raw, sha256_of
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from workers.dev import synthetic
from workflows.client import RetrainAlreadyRunningError, SentinelClient
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


async def wait_for_stage(
    sentinel: SentinelClient, model: str, stages: set[str], timeout: float = 120
) -> Progress:
    """Poll the ``progress`` query until the run is in one of ``stages``."""

    async def reached() -> Progress | None:
        progress = await sentinel.progress(model)
        return progress if progress.stage in stages else None

    # Exception: not started yet.
    return await eventually(
        reached, timeout=timeout, interval=0.3, ignore=Exception, message=f"never reached {stages}"
    )


async def test_v1_is_published_and_promoted_then_v2_is_gated_against_it(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    request = tiny_retrain_request(dataset_prefix, queues, epochs=3)
    model = request.model_name
    async with run_workers():
        workflow_id = await sentinel.start_retrain(request)
        assert workflow_id == f"retrain-{model}"
        seen = await wait_for_stage(sentinel, model, {"training"})
        assert seen.dataset_counts and sum(seen.dataset_counts.values()) == 24
        # A duplicate start while it runs is refused, naming the running workflow.
        with pytest.raises(RetrainAlreadyRunningError, match=workflow_id):
            await sentinel.start_retrain(request)
        assert await sentinel.start_retrain(request, attach=True) == workflow_id
        epochs_seen: set[int] = set()
        live_seen: set[bool] = set()

        async def training_ended() -> bool:
            progress = await sentinel.progress(model)
            epochs_seen.add(progress.epoch)
            live_seen.add(progress.live)
            return progress.stage != "training"

        await eventually(training_ended, timeout=240, interval=0.2, message="end of training")
        v1 = await sentinel.result(model)
        final = await sentinel.progress(model)  # queries need a worker
        history = await sentinel.handle(model).fetch_history()
        assert alias(store, settings.models_bucket, model) == 1
        # Same model, a tiny retrain: it must be compared to v1 on the same test split.
        second = tiny_retrain_request(dataset_prefix, queues, epochs=1, model=model)
        await sentinel.start_retrain(second)
        v2 = await sentinel.result(model)
        versions = await sentinel.list_versions(model)  # runs on the workers
    assert max(epochs_seen) >= 1, "progress query never showed a training epoch"
    # Epochs travel in the training's heartbeat, read by the client; the history holds none.
    assert True in live_seen, "progress never merged the training heartbeat"
    signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    assert not [e for e in history.events if e.event_type == signaled]
    bucket = settings.models_bucket
    meta1 = metadata(store, bucket, model, 1)
    # Default gate, no champion: floor 0, so v1 is promoted unless its parity check failed.
    assert meta1["parity"]["passed"] and meta1["champion_version"] is None
    assert v1.version == 1 and v1.promoted and v1.production_version == 1
    assert v1.epochs_done == 3 and meta1["epochs"] == 3
    # Signed, with the model signature read from the exported ONNX graph.
    assert meta1["hmac"]["key_id"] == "dev"
    signature, imgsz = meta1["model_signature"], meta1["imgsz"]
    assert signature["task"] == "detect" and signature["class_names"] == meta1["class_names"]
    assert signature["inputs"] == [
        {"name": "images", "shape": [1, 3, imgsz, imgsz], "dtype": "float32"}
    ]
    [output] = signature["outputs"]
    assert output["name"] == "output0" and output["dtype"] == "float32"
    assert output["shape"][:2] == [1, 4 + len(meta1["class_names"])]
    for name, record in meta1["artifacts"].items():  # present, with the digest of its bytes
        assert v1.artifacts[name] == record["key"] == f"models/{model}/v1/{name}"
        assert sha256_of(raw(store, bucket, record["key"])) == record["sha256"]
    assert final.stage == "succeeded" and final.candidate_version == 1
    # The run replays deterministically on the current code; record it on request so later
    # changes are checked against it (tests/histories/).
    await Replayer(
        workflows=[RetrainWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)
    if os.environ.get("SENTINEL_RECORD_HISTORY"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / "retrain_promoted_v1.json").write_text(history.to_json())

    assert v2.version == 2
    # Expected production from the default policy (min improvement 0, no confidence needed)
    # and v2's recorded measurements, not from what the run reported.
    meta2 = metadata(store, bucket, model, 2)
    gain = meta2["candidate"]["map50_95"] - meta2["champion"]["map50_95"]
    expected = 2 if gain >= -1e-9 and meta2["parity"]["passed"] else 1
    assert meta2["champion_version"] == 1
    assert alias(store, bucket, model) == expected and v2.promoted == (expected == 2)
    assert [v.version for v in versions.versions] == [2, 1]
    assert versions.production_version == expected


async def test_cancel_publishes_nothing_and_ends_canceled(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    request = tiny_retrain_request(dataset_prefix, queues, epochs=50)
    async with run_workers():
        await sentinel.start_retrain(request)
        await wait_for_stage(sentinel, request.model_name, {"training"})
        await sentinel.cancel(request.model_name)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(sentinel.result(request.model_name), 60)
    assert isinstance(info.value.cause, CancelledError)
    assert await sentinel.status(request.model_name) == WorkflowExecutionStatus.CANCELED
    assert not list(store.list(settings.models_bucket, f"models/{request.model_name}/"))


async def test_rejected_approval_registers_the_version_but_keeps_production(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    dataset_prefix: str,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    approval = ApprovalPolicy(required=True, timeout_seconds=600, on_timeout="reject")
    request = tiny_retrain_request(dataset_prefix, queues, epochs=1, approval=approval)
    async with run_workers():
        await sentinel.start_retrain(request)
        with pytest.raises(WorkflowUpdateFailedError) as early:
            await sentinel.approve(request.model_name, by="early-bird")
        assert "cannot approve" in str(early.value.cause)
        await wait_for_stage(sentinel, request.model_name, {"awaiting_approval"}, 240)
        answer = await sentinel.reject(request.model_name, by="alice", comment="looks wrong")
        assert "reject" in answer
        result = await sentinel.result(request.model_name)
    assert result.version == 1 and not result.promoted
    assert alias(store, settings.models_bucket, request.model_name) is None
    assert "rejected by alice" in result.reason
