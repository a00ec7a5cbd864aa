"""Mid-epoch checkpoints: a resumed attempt trains every sample of the epoch exactly once.

The real ``train`` activity (real S3, tiny real CPU training) run attempt by attempt with
``ActivityEnvironment``, as Temporal would retry it: attempt 2 gets attempt 1's last heartbeat
details. A test hook wraps the trainer's ``preprocess_batch`` and records which dataset
samples each batch consumed (by image file, from outside our trainer's bookkeeping); the
interrupted attempt's record followed by the resumed one's must be exactly the record of an
uninterrupted run with the same seed: same samples, same order, none twice, none skipped.
Several GPUs are refused by the activity too (the contract refuses them first:
``tests/unit/test_training_args.py``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import Hyperparameters, TrainRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.activity import TrainingActivities
from activities.training.checkpoints import checkpoint_prefix, position_of_key
from tests.helpers.training import make_snapshot

pytestmark = pytest.mark.timeout(300)

EPOCHS = 2
Record = list[tuple[int, str]]
"""``(epoch, image file)`` of every training sample consumed, in order."""


@pytest.fixture(scope="module")
def snapshot(settings: Settings, store: ObjectStore) -> SnapshotRef:
    return make_snapshot(settings, store, count=16, seed=13)  # 12 train images: 6 batches


def _request(snapshot: SnapshotRef, **hp: object) -> TrainRequest:
    # nbs=batch: an optimizer step after every batch, so every batch end is a resume point.
    fields: dict[str, Any] = {
        "epochs": EPOCHS, "imgsz": 64, "batch": 2, "seed": 3, "device": "cpu", "workers": 0,
        "extra": {"mosaic": 0.0, "warmup_epochs": 0.0, "nbs": 2}, **hp,
    }  # fmt: skip
    return TrainRequest(
        snapshot=snapshot, model_name="shapes", hyperparameters=Hyperparameters(**fields)
    )


def _recorder(record: Record, on_batch: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Test hooks: every consumed sample into ``record``; ``on_batch`` after each batch."""

    def wrap(trainer: Any) -> None:
        original = trainer.preprocess_batch

        def preprocess(batch: dict[str, Any]) -> Any:
            record.extend((int(trainer.epoch), str(f)) for f in batch["im_file"])
            return original(batch)

        trainer.preprocess_batch = preprocess

    hooks: dict[str, Any] = {"on_pretrain_routine_end": wrap}
    if on_batch is not None:
        hooks["on_train_batch_end"] = on_batch
    return hooks


def _env(workflow_id: str, attempt: int, details: list[Any]) -> tuple[ActivityEnvironment, list]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id=workflow_id, attempt=attempt, heartbeat_details=details
    )
    beats: list[dict[str, Any]] = []
    env.on_heartbeat = lambda *d: beats.append(d[0])
    return env, beats


@pytest.fixture(scope="module")
def uninterrupted(settings: Settings, store: ObjectStore, snapshot: SnapshotRef) -> Record:
    record: Record = []
    acts = TrainingActivities(settings, store, extra_callbacks=_recorder(record))
    env, _ = _env(f"mid-ref-{uuid.uuid4().hex[:8]}", 1, [])
    result = env.run(acts.train, _request(snapshot))
    assert result.epochs_done == EPOCHS
    return record


def _epoch(record: Record, epoch: int) -> list[str]:
    return [f for e, f in record if e == epoch]


def _assert_exactly_once(first: Record, resumed: Record, reference: Record) -> None:
    train_images = set(_epoch(reference, 0))
    interrupted = _epoch(first, 0) + _epoch(resumed, 0)
    assert Counter(interrupted) == Counter(dict.fromkeys(train_images, 1))  # none twice/skipped
    assert interrupted == _epoch(reference, 0)  # the same order, continued where it stopped
    assert _epoch(resumed, 1) == _epoch(reference, 1)  # later epochs unchanged too


def test_sigterm_mid_epoch_resumes_at_that_batch(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef, uninterrupted: Record
) -> None:
    workflow_id = f"mid-term-{uuid.uuid4().hex[:8]}"
    first: Record = []
    env, beats = _env(workflow_id, 1, [])

    def shut_down_after_third_batch(trainer: Any) -> None:
        if len(_epoch(first, 0)) == 6:
            env.worker_shutdown()  # seen at the next batch boundary: batch 4 is the last

    acts = TrainingActivities(
        settings, store, extra_callbacks=_recorder(first, shut_down_after_third_batch)
    )
    with pytest.raises(ApplicationError) as info:
        env.run(acts.train, _request(snapshot))
    assert info.value.type == "WorkerShutdown" and not info.value.non_retryable
    handed = beats[-1]
    assert (handed["epoch"], handed["samples"]) == (0, 8) and len(_epoch(first, 0)) == 8
    assert position_of_key(handed["key"]) == (0, 8)

    resumed: Record = []
    env2, _ = _env(workflow_id, 2, [handed])
    result = env2.run(
        TrainingActivities(settings, store, extra_callbacks=_recorder(resumed)).train,
        _request(snapshot),
    )
    assert result.resumed_from_epoch == 0 and result.epochs_done == EPOCHS
    _assert_exactly_once(first, resumed, uninterrupted)
    log = store.get_bytes(settings.runs_bucket, f"runs/{workflow_id}/logs/attempt-2.log")
    assert b"resuming from epoch 0 + 8 samples" in log


def test_sigterm_after_an_epochs_last_batch_hands_over_its_validated_checkpoint(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef, uninterrupted: Record
) -> None:
    """Nothing is left of the epoch but its validation: no mid-epoch checkpoint (it could not
    be resumed), the epoch's own one once validated."""
    workflow_id = f"mid-last-{uuid.uuid4().hex[:8]}"
    train_images = len(set(_epoch(uninterrupted, 0)))
    first: Record = []
    env, beats = _env(workflow_id, 1, [])

    def shut_down_before_the_last_batch(trainer: Any) -> None:
        if trainer.epoch == 0 and train_images - len(_epoch(first, 0)) <= 2:
            env.worker_shutdown()  # seen at the end of the epoch's last batch

    acts = TrainingActivities(
        settings, store, extra_callbacks=_recorder(first, shut_down_before_the_last_batch)
    )
    with pytest.raises(ApplicationError) as info:
        env.run(acts.train, _request(snapshot))
    assert info.value.type == "WorkerShutdown"
    assert position_of_key(beats[-1]["key"]) == (1, 0) and _epoch(first, 1) == []

    resumed: Record = []
    env2, _ = _env(workflow_id, 2, [beats[-1]])
    result = env2.run(
        TrainingActivities(settings, store, extra_callbacks=_recorder(resumed)).train,
        _request(snapshot),
    )
    assert result.resumed_from_epoch == 1 and result.epochs_done == EPOCHS
    assert _epoch(first, 0) == _epoch(uninterrupted, 0) and _epoch(resumed, 0) == []
    assert _epoch(resumed, 1) == _epoch(uninterrupted, 1)


def test_interval_checkpoint_found_by_listing_after_a_crash(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef, uninterrupted: Record
) -> None:
    """Time-based mid-epoch checkpoints; the worker dies before heartbeating the newest one,
    which the retry finds in storage."""
    workflow_id = f"mid-kill-{uuid.uuid4().hex[:8]}"
    prefix = checkpoint_prefix(f"runs/{workflow_id}/")
    first: Record = []

    def crash_after_fourth_batch(trainer: Any) -> None:
        if len(_epoch(first, 0)) == 8:  # its checkpoint is queued; the failing attempt flushes
            raise RuntimeError("simulated worker death")

    fast = settings.model_copy(update={"checkpoint_interval_seconds": 0.001})
    acts = TrainingActivities(
        fast, store, extra_callbacks=_recorder(first, crash_after_fourth_batch)
    )
    env, beats = _env(workflow_id, 1, [])
    with pytest.raises(RuntimeError, match="simulated worker death"):
        env.run(acts.train, _request(snapshot))
    stored = sorted(p for i in store.list(settings.runs_bucket, prefix)
                    if (p := position_of_key(i.key)))  # fmt: skip
    assert stored[-1] == (0, 8), stored  # time-based, mid-epoch: epoch 0 never ended
    early = next(b for b in beats if b["phase"] == "train")  # before any checkpoint
    assert early["key"] is None

    resumed: Record = []
    env2, _ = _env(workflow_id, 2, [early])
    result = env2.run(
        TrainingActivities(fast, store, extra_callbacks=_recorder(resumed)).train,
        _request(snapshot),
    )
    assert result.resumed_from_epoch == 0 and result.epochs_done == EPOCHS
    _assert_exactly_once(first, resumed, uninterrupted)


def test_the_activity_refuses_several_gpus(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef
) -> None:
    """A request that bypassed validation (an old client, a hand-written payload)."""
    hp = Hyperparameters.model_construct(**{**dict(Hyperparameters()), "device": "0,1"})
    request = TrainRequest.model_construct(**{**dict(_request(snapshot)), "hyperparameters": hp})
    env, _ = _env(f"mid-gpus-{uuid.uuid4().hex[:8]}", 1, [])
    with pytest.raises(ApplicationError) as info:
        env.run(TrainingActivities(settings, store).train, request)
    assert info.value.type == "BadInputError" and info.value.non_retryable
    assert "several GPUs (device='0,1')" in info.value.message
    assert "Train on one GPU (e.g. device='0')" in info.value.message
