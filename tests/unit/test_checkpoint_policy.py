"""When checkpoints are taken, how mid-epoch ones are named, and the epoch-seeded sampler."""

from __future__ import annotations

from typing import Any

import pytest

from activities.training.callbacks import Heartbeat, Interrupted, Signals, TrainingHooks
from activities.training.checkpoints import (
    CheckpointRef,
    checkpoint_key,
    epoch_of_key,
    merge_refs,
    position_of_key,
)
from activities.training.epoch_state import EpochSampler, MidEpoch
from activities.training.policy import CheckpointPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_interval_bounds_checkpoints_at_epoch_ends_and_inside_epochs() -> None:
    clock = Clock()
    policy = CheckpointPolicy(10.0, clock=clock)
    clock.now += 4
    assert not policy.epoch_end_due((1, 0))  # a short epoch: skipped
    assert not policy.mid_epoch_due((1, 64))
    clock.now += 6
    assert policy.mid_epoch_due((1, 64))  # ten seconds since the start: due, mid-epoch too
    policy.taken((1, 64))
    clock.now += 30
    assert not policy.mid_epoch_due((1, 64)) and not policy.epoch_end_due((1, 64))  # unchanged
    assert policy.epoch_end_due((2, 0))
    assert policy.skipped_count == 2 and policy.taken_count == 1


def test_interval_zero_is_every_epoch_end_and_never_inside() -> None:
    clock = Clock()
    policy = CheckpointPolicy(0, start=(3, 0), clock=clock)
    assert not policy.epoch_end_due((3, 0))  # the resumed position itself: nothing new
    assert policy.epoch_end_due((4, 0))
    clock.now += 3600
    assert not policy.mid_epoch_due((4, 512))


def test_restart_clock_does_not_count_setup_as_training() -> None:
    clock = Clock()
    policy = CheckpointPolicy(10.0, clock=clock)
    clock.now += 60  # dataset caching, model setup
    policy.restart_clock()
    clock.now += 5
    assert not policy.mid_epoch_due((0, 32))


def test_mid_epoch_keys_sort_between_epochs() -> None:
    prefix = "runs/w/"
    assert checkpoint_key(prefix, 3) == "runs/w/checkpoints/epoch-0003.pt"
    mid = checkpoint_key(prefix, 3, 512)
    assert mid == "runs/w/checkpoints/epoch-0003-sample-000000512.pt"
    assert position_of_key(mid) == (3, 512) and epoch_of_key(mid) == 3
    assert position_of_key("runs/w/checkpoints/epoch-0003.pt") == (3, 0)
    assert position_of_key("runs/w/checkpoints/notes.txt") is None
    refs = [CheckpointRef(3, "a", None), CheckpointRef(4, "c", None),
            CheckpointRef(3, "b", None, 512)]  # fmt: skip
    assert [r.key for r in merge_refs(refs)] == ["c", "b", "a"]
    # Inside the first epoch: no epoch completed, yet resumable.
    first = CheckpointRef.from_dict({"epoch": 0, "samples": 8, "key": "k", "sha256": "s"})
    assert first == CheckpointRef(0, "k", "s", 8) and first.describe() == "epoch 0 + 8 samples"
    assert CheckpointRef.from_dict({"epoch": 0, "key": "k"}) is None  # nothing trained
    assert CheckpointRef.from_dict({"epoch": 2, "key": "k"}) == CheckpointRef(2, "k", None)


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    a, b = EpochSampler(20, shuffle=True, seed=5), EpochSampler(20, shuffle=True, seed=5)
    first = list(a)  # pass for epoch 0
    list(a)  # a prefetched pass for epoch 1, then discarded by a dataloader reset
    a.rebase(1)
    b.rebase(1)
    assert list(a) == list(b) == b.order(1) != first
    assert sorted(first) == list(range(20))
    assert EpochSampler(20, shuffle=True, seed=6).order(0) != first
    assert list(EpochSampler(5, shuffle=False, seed=5)) == [0, 1, 2, 3, 4]


def test_a_resumed_epoch_yields_exactly_what_is_left() -> None:
    sampler = EpochSampler(10, shuffle=True, seed=1)
    order = sampler.order(2)
    sampler.resume = MidEpoch(epoch=2, samples=4, order=order)
    sampler.rebase(2)
    sampler.consumer_epoch = 2
    assert len(sampler) == 6
    assert list(sampler) == order[4:]
    sampler.consumer_epoch = 3
    assert len(sampler) == 10 and list(sampler) == sampler.order(3)


def _validation_hooks(budget: float) -> TrainingHooks:
    """Hooks whose worker is shutting down; validation touches no uploader nor poller."""
    heartbeat = Heartbeat(lambda details: None, checkpoints=[], batch=4)
    shutting_down = Signals(is_cancelled=lambda: False, is_worker_shutdown=lambda: True)
    none: Any = None
    return TrainingHooks(heartbeat, none, none, shutting_down, epochs=3, min_batch=1,
                         shutdown_budget=budget)  # fmt: skip


def test_a_shutdown_during_validation_waits_for_the_epoch_checkpoint_within_a_budget() -> None:
    patient = _validation_hooks(3600.0)
    for _ in range(3):
        patient.on_val_batch_end(None)  # keeps validating: the epoch's checkpoint comes next
    with pytest.raises(Interrupted) as info:
        _validation_hooks(-1.0).on_val_batch_end(None)  # budget spent: hand over now
    assert info.value.reason == "worker_shutdown"
