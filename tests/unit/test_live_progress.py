"""Pure pieces of the run's story: sparse progress signals, heartbeat merge, UI texts."""

from __future__ import annotations

import itertools

import pytest

from activities.contracts.dataset import AssembleRequest, SnapshotRef
from activities.contracts.gate import GateDecision
from activities.contracts.retrain import Progress, RetrainRequest
from activities.contracts.training import Hyperparameters, RegistryBase
from activities.training.progress import MIN_SIGNAL_SECONDS, SignalPacer
from workflows import retrain_story as story
from workflows.client.live import merge_heartbeat


def _signalled(pacer: SignalPacer, epochs: int, seconds_per_epoch: float) -> list[int]:
    pacer.due("run", 1, 0, epochs, 0.0)  # the attempt's training starts at t=0
    return [
        epoch
        for epoch in range(1, epochs + 1)
        if pacer.due("run", 1, epoch, epochs, epoch * seconds_per_epoch)
    ]


def test_signals_are_bounded_per_attempt_and_paced() -> None:
    # 1000 epochs of 5 s: one signal per 10%, never more than 10.
    assert _signalled(SignalPacer(), 1000, 5.0) == list(range(100, 1001, 100))
    # 60 epochs of 3 minutes: the milestones, 10 at most (was 60 signals, one per epoch).
    assert len(_signalled(SignalPacer(), 60, 180.0)) == 10
    # A short run (3 epochs of 10 s): no signal at all, the heartbeat carries the epochs.
    assert _signalled(SignalPacer(), 3, 10.0) == []
    # Fast epochs: at most one a minute.
    times = [e * 7.0 for e in _signalled(SignalPacer(), 100, 7.0)]
    assert all(b - a >= MIN_SIGNAL_SECONDS for a, b in itertools.pairwise(times))


def test_pacer_keeps_runs_and_attempts_apart() -> None:
    pacer = SignalPacer(milestones=2, min_seconds=0)
    assert pacer.due("a", 1, 5, 10, 1.0) and not pacer.due("a", 1, 5, 10, 2.0)
    assert pacer.due("a", 2, 5, 10, 3.0)  # a resumed attempt starts over
    assert pacer.due("b", 1, 5, 10, 4.0)


def _progress(**updates: object) -> Progress:
    fields: dict[str, object] = {"model_name": "m", "stage": "training", "epochs": 10}
    return Progress.model_validate(fields | updates)


HEARTBEAT = {
    "epoch": 4, "epochs": 10, "attempt": 2, "resumed_from_epoch": 3,
    "metrics": {"map50_95": 0.25, "map50": 0.5}, "seconds_per_epoch": 3.0,
}  # fmt: skip


def test_heartbeat_summary_is_merged_while_training() -> None:
    merged = merge_heartbeat(_progress(epoch=2, metrics={"map50": 0.1}), HEARTBEAT)
    assert (merged.epoch, merged.epochs, merged.attempt, merged.resumed_from_epoch) == (
        4, 10, 2, 3,
    )  # fmt: skip
    assert merged.metrics == {"map50_95": 0.25, "map50": 0.5} and merged.live
    assert merged.eta_seconds == pytest.approx(18.0)  # 6 epochs left at 3 s


@pytest.mark.parametrize(
    ("progress", "summary"),
    [
        (_progress(stage="evaluating", epoch=10), HEARTBEAT),  # training is over
        (_progress(epoch=6), HEARTBEAT | {"attempt": 1}),  # an older attempt's heartbeat
        (_progress(epoch=6, attempt=2), HEARTBEAT),  # behind what the workflow knows
        (_progress(epoch=1), {"phase": "setup"}),  # no epoch yet
    ],
)
def test_stale_or_irrelevant_heartbeats_change_nothing(
    progress: Progress, summary: dict[str, object]
) -> None:
    assert merge_heartbeat(progress, summary) == progress


def test_summaries_name_what_each_stage_works_on() -> None:
    request = RetrainRequest(
        model_name="parts",
        dataset=AssembleRequest(dataset="parts", prefix="datasets/parts", format="coco"),
        base=RegistryBase(model="parts", version="production"),
        hyperparameters=Hyperparameters(epochs=100, imgsz=640),
    )
    snapshot = SnapshotRef(
        dataset="parts", bucket="b", key="k", sha256="3fa2c1" + "0" * 58, class_names=["a"],
        counts={"train": 38, "val": 5, "test": 5},
    )  # fmt: skip
    assert story.train_summary(request, snapshot) == (
        "train registry:parts@production 100 epochs imgsz 640 on parts@3fa2c1 "
        "(38 train / 5 val / 5 test)"
    )
    assert story.retrain_summary(request) == (
        "retrain parts: registry:parts@production 100 epochs, imgsz 640 on datasets/parts (coco)"
    )
    assert "test split of 5 images" in story.evaluate_summary(request, snapshot)
    decision = GateDecision(promote=False, reason="x" * 500, candidate_map50_95=0.1)
    summary = story.publish_summary(request, decision)
    assert summary.startswith("publish parts (keep production: x") and len(summary) == 200


def test_current_details_tell_attempt_and_resume() -> None:
    details = story.current_details(
        _progress(epoch=43, attempt=2, resumed_from_epoch=41, metrics={"map50_95": 0.4123})
    )
    assert details.splitlines() == [
        "**stage** training  ",
        "**epoch** 43/10 (attempt 2, resumed from epoch 41)  ",
        "**metrics** mAP50-95 0.412",
    ]
