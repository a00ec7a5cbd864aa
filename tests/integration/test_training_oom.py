"""CUDA out of memory, simulated on CPU: the batch is halved across attempts, down to a floor.

The real ``train`` activity (real S3, tiny real training) with an extra batch-end callback
that raises ``torch.cuda.OutOfMemoryError`` while the batch is too large, as a GPU would. The
retry is Temporal's: a real worker runs the activity, the server retries it, and attempt 2
finds the halved batch and the checkpoint in attempt 1's heartbeat details. The floor case
(nothing left to halve) is final at once, checked on the activity alone.
"""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import torch
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.contracts import names
from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import Hyperparameters, TrainRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.activity import TrainingActivities
from tests.helpers.history import activities_in, only
from tests.helpers.stack import Queues
from tests.helpers.training import make_snapshot, start, workflow_worker

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def snapshot(settings: Settings, store: ObjectStore) -> SnapshotRef:
    return make_snapshot(settings, store, count=16, seed=12)


def _oom_when_batch_above(limit: int) -> Any:
    def callback(trainer: Any) -> None:
        if trainer.epoch >= 1 and trainer.batch_size > limit:  # fails in epoch 2
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return callback


def _request(snapshot: SnapshotRef, *, batch: int, min_batch: int) -> TrainRequest:
    hp = Hyperparameters(
        epochs=3, imgsz=64, batch=batch, seed=1, device="cpu", extra={"mosaic": 0.0}
    )
    return TrainRequest(snapshot=snapshot, model_name="shapes", hyperparameters=hp,
                        min_batch=min_batch)  # fmt: skip


async def test_oom_is_retried_by_temporal_with_half_the_batch_from_the_checkpoint(
    client: Client, queues: Queues, settings: Settings, store: ObjectStore, snapshot: SnapshotRef
) -> None:
    """A real worker, Temporal's retry: attempt 2 reads what attempt 1 heartbeated."""
    acts = TrainingActivities(
        queues.settings, store, extra_callbacks={"on_train_batch_end": _oom_when_batch_above(2)}
    )
    throttle = timedelta(seconds=queues.settings.heartbeat_throttle_seconds)
    gpu = Worker(
        client,
        task_queue=queues.gpu,
        activities=[acts.train],
        activity_executor=ThreadPoolExecutor(2),
        max_heartbeat_throttle_interval=throttle,
        default_heartbeat_throttle_interval=throttle,
    )
    async with workflow_worker(client, queues, store), gpu:
        handle = await start(client, queues, _request(snapshot, batch=4, min_batch=2))
        result = await handle.result()
        train = only(activities_in(await handle.fetch_history()), names.TRAIN)
    failure = train.last_failure  # why attempt 1 ended, as the server recorded it
    assert train.attempt == 2 and failure is not None
    assert failure.application_failure_info.type == "OutOfMemory"
    assert failure.message == "out of GPU memory at batch=4: retrying with batch=2"
    assert (result.attempt, result.batch, result.resumed_from_epoch) == (2, 2, 1)
    assert result.epochs_done == result.epochs_requested == 3


def test_oom_at_the_floor_is_final(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef
) -> None:
    acts = TrainingActivities(
        settings, store, extra_callbacks={"on_train_batch_end": _oom_when_batch_above(2)}
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=f"oom-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ApplicationError) as info:
        env.run(acts.train, _request(snapshot, batch=4, min_batch=4))
    assert info.value.type == "BadInputError" and info.value.non_retryable
    assert "halving would go below min_batch=4" in info.value.message


def test_ultralytics_own_halving_is_carried_to_the_next_attempt(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef
) -> None:
    """An out-of-memory inside the forward pass of the first epoch is halved by Ultralytics
    itself; the batch that fits is heartbeated, so an attempt after a drained worker (SIGTERM)
    starts at it instead of running out of memory again."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=f"oom-{uuid.uuid4().hex[:8]}")
    beats: list[dict[str, Any]] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    batches_at_two: list[int] = []

    def too_big_in_forward(trainer: Any) -> None:
        original = trainer.preprocess_batch

        def preprocess(batch: dict[str, Any]) -> Any:
            if trainer.batch_size > 2:  # inside Ultralytics' forward try-block, as on a GPU
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB")
            return original(batch)

        trainer.preprocess_batch = preprocess

    def drain_after_two_batches(trainer: Any) -> None:
        batches_at_two.append(trainer.batch_size)
        if len(batches_at_two) == 2:
            env.worker_shutdown()

    hooks = {"on_pretrain_routine_end": too_big_in_forward,
             "on_train_batch_end": drain_after_two_batches}  # fmt: skip
    with pytest.raises(ApplicationError) as info:
        env.run(TrainingActivities(settings, store, extra_callbacks=hooks).train,
                _request(snapshot, batch=8, min_batch=1))  # fmt: skip
    assert info.value.type == "WorkerShutdown"
    assert batches_at_two[0] == 2 and beats[-1]["batch"] == 2  # halved twice, in process

    env2 = ActivityEnvironment()
    env2.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[beats[-1]])
    result = env2.run(TrainingActivities(settings, store).train,
                      _request(snapshot, batch=8, min_batch=1))  # fmt: skip
    assert (result.attempt, result.batch) == (2, 2)
    assert result.epochs_done == result.epochs_requested
