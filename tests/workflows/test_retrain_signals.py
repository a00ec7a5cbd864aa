"""What reaches a running RetrainWorkflow during training: ``training_progress`` signals (the
``progress`` query reflects them, until training's result says how it ended) and
``stop_early`` (one ``write_control``, the run goes on)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from activities.contracts import names
from activities.contracts.retrain import Progress, TrainingProgress
from activities.contracts.training import WriteControlRequest
from tests.helpers import factories
from tests.helpers.polling import eventually
from tests.workflows.harness import Harness
from tests.workflows.stubs import PIPELINE
from workflows.retrain import workflow_id_for

pytestmark = pytest.mark.timeout(60)


async def test_progress_query_reflects_training_progress_signals(harness: Harness) -> None:
    stubs = harness.stubs
    request = harness.request()
    release = stubs.hold(names.TRAIN)
    handle = await harness.start(request)
    await stubs.started(names.TRAIN)

    before = await harness.reach_stage(handle, "training")
    counts = factories.snapshot_ref(request.dataset.dataset).counts
    assert (before.model_name, before.epoch, before.epochs) == (request.model_name, 0, 5)
    assert (before.metrics, before.dataset_counts) == ({}, counts)
    assert (before.eta_seconds, before.decision, before.error) == (None, None, None)
    assert (before.approval, before.stop_early_requested) == ("not_required", False)

    for update in (
        TrainingProgress(epoch=1, epochs=5, metrics={"map50_95": 0.2}),
        TrainingProgress(epoch=2, epochs=5, metrics={"map50_95": 0.3, "map50": 0.5}),
        TrainingProgress(epoch=3, epochs=5, metrics={"map50_95": 0.25}, attempt=2),  # resumed
    ):
        await handle.signal(names.TRAINING_PROGRESS_SIGNAL, update)
        seen = await eventually(
            lambda u=update: _showing(harness, handle, u), message=f"epoch {update.epoch}"
        )
        assert (seen.stage, seen.epoch, seen.epochs, seen.metrics) == (
            "training",
            update.epoch,
            5,
            update.metrics,
        )
        assert seen.eta_seconds is not None and seen.eta_seconds >= 0

    release.set()
    await handle.result()
    final = await harness.progress(handle)
    trained = factories.train_result(handle.id, epochs=5)  # what the train stub returned
    assert (final.stage, final.epoch, final.eta_seconds) == ("succeeded", 5, None)
    assert final.metrics == {"map50": trained.metrics.map50, "map50_95": trained.metrics.map50_95}
    assert (final.attempt, final.resumed_from_epoch) == (1, None)


async def _showing(
    harness: Harness, handle: WorkflowHandle[Any, Any], update: TrainingProgress
) -> Progress | None:
    """The progress query's answer once it shows ``update``'s epoch and metrics."""
    progress = await harness.progress(handle)
    shown = (progress.epoch, progress.metrics) == (update.epoch, update.metrics)
    return progress if shown else None


async def test_stop_early_writes_the_control_once_and_the_pipeline_continues(
    harness: Harness,
) -> None:
    stubs = harness.stubs
    request = harness.request()
    workflow_id = workflow_id_for(request.model_name)
    release = stubs.hold(names.TRAIN)
    stubs.returns(
        names.TRAIN,
        lambda r: factories.train_result(
            workflow_id, epochs=r.hyperparameters.epochs, epochs_done=2, stopped_early=True
        ),
    )
    handle = await harness.start(request)
    await stubs.started(names.TRAIN)
    await harness.reach_stage(handle, "training")

    await handle.signal(names.STOP_EARLY_SIGNAL)
    await handle.signal(names.STOP_EARLY_SIGNAL)  # a second request changes nothing
    await stubs.started(names.WRITE_CONTROL)
    shown = await harness.progress(handle)
    assert (shown.stage, shown.stop_early_requested) == ("training", True)
    release.set()  # training ends after "the current epoch", as the real one would
    result = await handle.result()

    assert stubs.only_request(names.WRITE_CONTROL) == WriteControlRequest(
        run_id=workflow_id, reason="stop_early signal"
    )
    assert stubs.calls_of(names.WRITE_CONTROL)[0].task_queue == harness.cpu
    assert stubs.order() == [*PIPELINE[:2], names.WRITE_CONTROL, *PIPELINE[2:]]
    assert (result.stopped_early, result.epochs_done, result.promoted) == (True, 2, True)
    assert stubs.only_request(names.PUBLISH).epochs == 2
    final = await harness.progress(handle)
    assert (final.stage, final.stop_early_requested) == ("succeeded", True)
