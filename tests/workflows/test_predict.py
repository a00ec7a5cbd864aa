"""PredictWorkflow's logic on stub activities, driven through the typed client.

Sharding (every shard once, on the backend's queue, at most ``parallel_shards`` at a time,
finished in order), the progress query, cancel, a failing shard, bad input, stop early, and
one run per output prefix.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import names
from activities.contracts.predict import PredictProgress, PredictRequest
from activities.infra.settings import Settings
from tests.helpers.polling import eventually
from tests.helpers.predict_factories import plan_for, stub_predict_request
from tests.workflows.harness import Harness
from workflows.client import PredictionAlreadyRunningError, SentinelClient, prediction_id

pytestmark = pytest.mark.timeout(60)


def sentinel(harness: Harness) -> SentinelClient:
    """The product's client, routed to the harness's queues."""
    settings = Settings(cpu_task_queue=harness.cpu, gpu_task_queue=harness.gpu)
    return SentinelClient(harness.client, settings)


async def start(harness: Harness, shards: int = 5, **updates: Any) -> tuple[str, PredictRequest]:
    """Start a run whose plan has ``shards`` shards of 5 images."""
    harness.stubs.returns(names.PLAN_PREDICTION, lambda r: plan_for(r, shards=shards))
    request = stub_predict_request(harness.cpu, harness.gpu, **updates)
    workflow_id = await sentinel(harness).start_prediction(request)
    harness.track(sentinel(harness).prediction_handle(workflow_id))
    return workflow_id, request


async def running_shards(harness: Harness, workflow_id: str, count: int) -> PredictProgress:
    """Wait until ``count`` shards run (held) and the progress query says so."""

    async def there() -> PredictProgress | None:
        progress = await sentinel(harness).prediction_progress(workflow_id)
        started = len(harness.stubs.calls_of(names.PREDICT_SHARD))
        return progress if progress.shards_running == count and started == count else None

    return await eventually(there, timeout=15, interval=0.05, message=f"{count} shards running")


@pytest.mark.parametrize(("backend", "queue"), [("pytorch", "gpu"), ("onnx", "cpu")])
async def test_every_shard_runs_once_on_the_backends_queue_and_is_finished_in_order(
    harness: Harness, backend: str, queue: str
) -> None:
    workflow_id, request = await start(harness, shards=5, backend=backend, parallel_shards=2)
    result = await sentinel(harness).prediction_result(workflow_id)
    shards = harness.stubs.calls_of(names.PREDICT_SHARD)
    assert sorted(call.request.shard.index for call in shards) == [0, 1, 2, 3, 4]
    assert {call.task_queue for call in shards} == {getattr(harness, queue)}
    assert {call.request.model.artifact for call in shards} == {
        "model.pt" if backend == "pytorch" else "model.onnx"
    }
    assert all(call.request.out == request.out for call in shards)
    finish = harness.stubs.only_request(names.FINISH_PREDICTION)
    assert [shard.index for shard in finish.shards] == [0, 1, 2, 3, 4]
    assert finish.stopped is False and finish.workflow_id == prediction_id(request.out)
    assert harness.stubs.order()[0] == names.PLAN_PREDICTION
    assert harness.stubs.order()[-1] == names.FINISH_PREDICTION
    assert result.shards == result.shards_predicted == 5 and not result.stopped_early
    assert result.summary.images == 25


async def test_at_most_parallel_shards_run_and_progress_counts_them(harness: Harness) -> None:
    release = harness.stubs.hold(names.PREDICT_SHARD)
    workflow_id, _ = await start(harness, shards=5, parallel_shards=2)
    seen = await running_shards(harness, workflow_id, 2)
    assert seen.stage == "predicting" and seen.shards == 5 and seen.images == 25
    assert seen.shards_done == 0 and seen.images_done == 0 and seen.version == 3
    release.set()
    await sentinel(harness).prediction_result(workflow_id)
    final = await sentinel(harness).prediction_progress(workflow_id)
    assert final.stage == "succeeded" and final.shards_done == 5 and final.images_done == 25
    assert final.shards_running == 0


async def test_cancel_stops_the_running_shards_and_writes_nothing(harness: Harness) -> None:
    harness.stubs.hold(names.PREDICT_SHARD)
    workflow_id, _ = await start(harness, shards=4, parallel_shards=2)
    await running_shards(harness, workflow_id, 2)
    await sentinel(harness).cancel_prediction(workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await sentinel(harness).prediction_result(workflow_id)
    assert isinstance(failure.value.cause, CancelledError)
    await harness.stubs.cancelled(names.PREDICT_SHARD)
    assert harness.stubs.calls_of(names.FINISH_PREDICTION) == []
    assert len(harness.stubs.calls_of(names.PREDICT_SHARD)) == 2
    assert (await sentinel(harness).prediction_progress(workflow_id)).stage == "canceled"


async def test_a_failing_shard_fails_the_run_and_cancels_the_others(harness: Harness) -> None:
    harness.stubs.hold(names.PREDICT_SHARD)
    harness.stubs.fail(
        names.PREDICT_SHARD,
        "refusing to load v3 model.pt: sha256 mismatch",
        kind="IntegrityError",
        when=lambda request: request.shard.index == 2,
    )
    workflow_id, _ = await start(harness, shards=4, parallel_shards=3)
    with pytest.raises(WorkflowFailureError) as failure:
        await sentinel(harness).prediction_result(workflow_id)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "IntegrityError"
    assert "failed while predicting" in cause.message and "sha256 mismatch" in cause.message
    await harness.stubs.cancelled(names.PREDICT_SHARD)  # the two held shards were stopped
    started = [call.request.shard.index for call in harness.stubs.calls_of(names.PREDICT_SHARD)]
    assert sorted(started) == [0, 1, 2], "no shard starts after one failed"
    assert harness.stubs.calls_of(names.FINISH_PREDICTION) == []
    progress = await sentinel(harness).prediction_progress(workflow_id)
    assert progress.stage == "failed" and progress.error and "sha256 mismatch" in progress.error


async def test_bad_input_fails_fast_with_its_type_and_predicts_nothing(harness: Harness) -> None:
    harness.stubs.fail(names.PLAN_PREDICTION, "no images to predict on in sentinel-data/x")
    request = stub_predict_request(harness.cpu, harness.gpu)
    workflow_id = await sentinel(harness).start_prediction(request)
    with pytest.raises(WorkflowFailureError) as failure:
        await sentinel(harness).prediction_result(workflow_id)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "BadInputError"
    assert cause.non_retryable and "no images to predict on" in cause.message
    assert harness.stubs.order() == [names.PLAN_PREDICTION], "planned once, nothing after"


async def test_stop_early_finishes_the_running_shards_and_writes_them(harness: Harness) -> None:
    release = harness.stubs.hold(names.PREDICT_SHARD)
    workflow_id, _ = await start(harness, shards=5, parallel_shards=2)
    await running_shards(harness, workflow_id, 2)
    await sentinel(harness).stop_prediction(workflow_id)

    async def stop_seen() -> bool:
        return (await sentinel(harness).prediction_progress(workflow_id)).stop_early_requested

    await eventually(stop_seen, timeout=10, interval=0.05, message="stop_early recorded")
    release.set()
    result = await sentinel(harness).prediction_result(workflow_id)
    assert result.stopped_early and result.shards == 5 and result.shards_predicted == 2
    finish = harness.stubs.only_request(names.FINISH_PREDICTION)
    assert finish.stopped and [shard.index for shard in finish.shards] == [0, 1]
    assert len(harness.stubs.calls_of(names.PREDICT_SHARD)) == 2


async def test_one_run_per_output_prefix(harness: Harness) -> None:
    harness.stubs.hold(names.PREDICT_SHARD)
    workflow_id, request = await start(harness, shards=2)
    with pytest.raises(PredictionAlreadyRunningError, match=workflow_id):
        await sentinel(harness).start_prediction(request.model_copy(update={"version": 1}))
    assert await sentinel(harness).start_prediction(request, attach=True) == workflow_id
