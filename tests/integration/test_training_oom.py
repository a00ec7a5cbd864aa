"""CUDA out of memory, simulated on CPU: the batch is halved across attempts, down to a floor.

Runs the real ``train`` activity in an ``ActivityEnvironment`` (real S3, tiny real training); an
extra batch-end callback raises ``torch.cuda.OutOfMemoryError`` while the batch is too large,
as a GPU would. The retry is driven by hand with the first attempt's last heartbeat details.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
import torch
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import Hyperparameters, TrainRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.activity import TrainingActivities
from tests.helpers.training import make_snapshot

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def snapshot(settings: Settings, store: ObjectStore) -> SnapshotRef:
    return make_snapshot(settings, store, count=16, seed=12)


def _oom_when_batch_above(limit: int) -> Any:
    def callback(trainer: Any) -> None:
        if trainer.epoch >= 1 and trainer.batch_size > limit:  # fails in epoch 2
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return callback


def _env(workflow_id: str, *, attempt: int = 1, details: list[Any] | None = None) -> tuple:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id=workflow_id, attempt=attempt, heartbeat_details=details or []
    )
    beats: list[dict[str, Any]] = []
    env.on_heartbeat = lambda *d: beats.append(d[0])
    return env, beats


def _request(snapshot: SnapshotRef, *, batch: int, min_batch: int) -> TrainRequest:
    hp = Hyperparameters(
        epochs=3, imgsz=64, batch=batch, seed=1, device="cpu", extra={"mosaic": 0.0}
    )
    return TrainRequest(snapshot=snapshot, model_name="shapes", hyperparameters=hp,
                        min_batch=min_batch)  # fmt: skip


def test_oom_retries_with_half_the_batch_from_the_checkpoint(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef
) -> None:
    acts = TrainingActivities(
        settings, store, extra_callbacks={"on_train_batch_end": _oom_when_batch_above(2)}
    )
    workflow_id = f"oom-{uuid.uuid4().hex[:8]}"
    request = _request(snapshot, batch=4, min_batch=2)
    env, beats = _env(workflow_id)
    with pytest.raises(ApplicationError) as info:
        env.run(acts.train, request)
    assert info.value.type == "OutOfMemory" and not info.value.non_retryable
    assert "retrying with batch=2" in info.value.message
    last = beats[-1]
    assert last["batch"] == 2 and last["epoch"] == 1  # epoch 1's checkpoint was uploaded

    retry, _ = _env(workflow_id, attempt=2, details=[last])
    result = retry.run(acts.train, request)
    assert result.batch == 2 and result.resumed_from_epoch == 1
    assert result.epochs_done == 3 and result.attempt == 2


def test_oom_at_the_floor_is_final(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef
) -> None:
    acts = TrainingActivities(
        settings, store, extra_callbacks={"on_train_batch_end": _oom_when_batch_above(2)}
    )
    env, _ = _env(f"oom-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ApplicationError) as info:
        env.run(acts.train, _request(snapshot, batch=4, min_batch=4))
    assert info.value.type == "BadInputError" and info.value.non_retryable
    assert "halving would go below min_batch=4" in info.value.message
