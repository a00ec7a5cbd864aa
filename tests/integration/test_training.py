"""Training activity end to end: real Temporal server, real S3 server, tiny real CPU training.

Each test drives :class:`TrainOnlyWorkflow` on its own queues: the workflow (and
``write_control``) on an in-process CPU worker, the ``train`` activity on an in-process GPU-queue
worker or on ``python -m workers --queues gpu`` subprocesses that the test SIGKILLs.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.contracts import names
from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import (
    Hyperparameters,
    RegistryBase,
    S3Base,
    TrainRequest,
)
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.checkpoints import checkpoint_prefix, epoch_of_key
from activities.training.resume import check_checkpoint
from tests.helpers.history import activities_in, only
from tests.helpers.outside import raw, sha256_of
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, RunWorkers, WorkerProcess
from tests.helpers.stage_workflows import TrainOnlyWorkflow
from tests.helpers.training import heartbeat_details, make_snapshot, start, workflow_worker

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def _offline(settings: Settings) -> None:
    """Ultralytics imported by the tests themselves must be the bootstrapped, offline one."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()


@pytest.fixture(scope="module")
def snapshot(settings: Settings, store: ObjectStore) -> SnapshotRef:
    """16 synthetic 96 px images (about 3/4 train, 1/4 val), assembled once for the module."""
    return make_snapshot(settings, store, count=16, seed=11)


DEVICE = os.environ.get("SENTINEL_TEST_DEVICE", "cpu")
"""``0`` on a GPU machine (``bench/gpu_check.py``): the same tests on CUDA, AMP on."""


def _hp(epochs: int, **kwargs: object) -> Hyperparameters:
    extra = {"mosaic": 0.0, "warmup_epochs": 0.0, **kwargs.pop("extra", {})}  # type: ignore[dict-item]
    return Hyperparameters(
        epochs=epochs, imgsz=64, batch=4, seed=1, device=DEVICE, workers=0, extra=extra, **kwargs
    )


def _request(snapshot: SnapshotRef, hp: Hyperparameters, **kwargs: object) -> TrainRequest:
    return TrainRequest(snapshot=snapshot, model_name="shapes", hyperparameters=hp, **kwargs)


async def test_normal_run_returns_metrics_and_loadable_weights(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    snapshot: SnapshotRef,
    tmp_path: Path,
) -> None:
    async with workflow_worker(client, queues, store), run_workers(kinds=("gpu",)):
        handle = await start(client, queues, _request(snapshot, _hp(3)))
        result = await handle.result()
    assert result.epochs_done == result.epochs_requested == 3
    assert result.resumed_from_epoch is None and not result.stopped_early
    assert result.stop_reason == "completed" and result.attempt == 1
    assert result.best_key == f"runs/{handle.id}/best.pt"
    assert [row.epoch for row in result.history] == [1, 2, 3]
    assert {"train/box_loss", "val/box_loss"} <= set(result.metrics.losses)
    assert 0.0 <= result.metrics.map50 <= 1.0
    from ultralytics import YOLO

    for key, sha in ((result.best_key, result.best_sha256), (result.last_key, result.last_sha256)):
        path = tmp_path / Path(key).name
        path.write_bytes(raw(store, settings.runs_bucket, key))
        assert sha256_of(path.read_bytes()) == sha  # the digest the result names is the bytes'
        model = YOLO(str(path))
        assert model.names == dict(enumerate(snapshot.class_names))
    csv = store.get_bytes(settings.runs_bucket, result.results_csv_key).decode()
    assert len(csv.strip().splitlines()) == 1 + 3
    # A completed training is never resumed: its checkpoints are gone (retention).
    assert _checkpoints(store, settings, handle.id) == []
    # The attempt's log stays (logs/ is not a resume point): one line per epoch, with losses
    # and metrics.
    log = store.get_bytes(settings.runs_bucket, f"runs/{handle.id}/logs/attempt-1.log").decode()
    assert f"attempt 1 of {handle.id}: train shapes" in log and "starting from the base" in log
    assert all(f"epoch {n}/3  box_loss" in log for n in (1, 2, 3)) and "mAP50-95" in log, log
    assert log.rstrip().endswith(f"best.pt sha256 {result.best_sha256[:12]}"), log


def _checkpoints(store: ObjectStore, settings: Settings, workflow_id: str) -> list[str]:
    prefix = checkpoint_prefix(f"runs/{workflow_id}/")
    listed = store.list(settings.runs_bucket, prefix)  # checkpoints, not their signed sidecars
    return sorted(info.key for info in listed if info.key.endswith(".pt"))


async def wait_for_checkpoint(
    store: ObjectStore, settings: Settings, handle: WorkflowHandle, *, min_epoch: int = 1,
    timeout: float = 90.0,
) -> int:  # fmt: skip
    """Poll S3 until a checkpoint of epoch >= ``min_epoch`` exists; returns its epoch."""

    def newest() -> int | None:
        epochs = [epoch_of_key(k) or 0 for k in _checkpoints(store, settings, handle.id)]
        return max(epochs) if epochs and max(epochs) >= min_epoch else None

    return await eventually(
        newest, timeout=timeout, message=f"no checkpoint of epoch >= {min_epoch}"
    )


async def test_cancel_is_acknowledged_by_the_activity_and_keeps_a_resumable_checkpoint(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    snapshot: SnapshotRef,
    tmp_path: Path,
) -> None:
    epochs = 40
    async with workflow_worker(client, queues, store), run_workers(kinds=("gpu",)):
        request = _request(snapshot, _hp(epochs), heartbeat_timeout_seconds=60)
        handle = await start(client, queues, request)
        await wait_for_checkpoint(store, settings, handle, min_epoch=2)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        description = await handle.describe()
        train = only(activities_in(await handle.fetch_history()), names.TRAIN)
    assert description.status == WorkflowExecutionStatus.CANCELED
    # The activity itself stopped and said so (its heartbeat timeout, 60 s, never fired): the
    # workflow waits for that acknowledgement. How fast: cancel_latency_seconds in bench/.
    assert (train.outcome, train.attempt) == ("canceled", 1)
    keys = _checkpoints(store, settings, handle.id)
    newest = keys[-1]
    path = tmp_path / "newest.pt"
    store.get_file(settings.runs_bucket, newest, path)  # verified against its recorded sha256
    reason, ckpt = check_checkpoint(path, epochs)
    assert reason is None, reason
    assert ckpt is not None and ckpt["epoch"] + 1 == epoch_of_key(newest)
    assert not store.exists(settings.runs_bucket, f"runs/{handle.id}/best.pt")


async def test_stop_early_ends_after_the_epoch_with_best_weights(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    snapshot: SnapshotRef,
    tmp_path: Path,
) -> None:
    epochs = 40
    async with workflow_worker(client, queues, store), run_workers(kinds=("gpu",)):
        handle = await start(client, queues, _request(snapshot, _hp(epochs)))
        seen = await wait_for_checkpoint(store, settings, handle, min_epoch=1)
        await handle.signal(TrainOnlyWorkflow.stop_early, "good enough")
        result = await handle.result()
    assert result.stopped_early and result.stop_reason == "requested"  # the control was seen
    # ... and consumed: a completed training deletes it with its checkpoints, so the next run
    # with this workflow id does not stop at its first epoch.
    assert not store.exists(settings.runs_bucket, f"runs/{handle.id}/control/stop_early")
    assert _checkpoints(store, settings, handle.id) == []
    assert seen <= result.epochs_done < epochs
    assert result.epochs_requested == epochs
    assert [row.epoch for row in result.history][-1] == result.epochs_done
    from ultralytics import YOLO

    best = tmp_path / "best.pt"
    best.write_bytes(raw(store, settings.runs_bucket, result.best_key))
    assert sha256_of(best.read_bytes()) == result.best_sha256
    YOLO(str(best))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mosaic": 2.0}, "hyperparameters.extra['mosaic'] is invalid"),
        ({"cos_lr": "yes"}, "hyperparameters.extra['cos_lr'] is invalid"),
        ({"mosiac": 0.5}, "unknown Ultralytics argument 'mosiac' (did you mean 'mosaic'?)"),
    ],
)
async def test_invalid_hyperparameters_fail_fast_and_final(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    snapshot: SnapshotRef,
    extra: dict[str, object],
    message: str,
) -> None:
    async with workflow_worker(client, queues, store), run_workers(kinds=("gpu",)):
        handle = await start(client, queues, _request(snapshot, _hp(3, extra=extra)))
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        train = only(activities_in(await handle.fetch_history()), names.TRAIN)
    cause = info.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "BadInputError" and cause.non_retryable
    assert message in cause.message
    # Final: one attempt of the three the workflow allows, and nothing stored for the run.
    assert (train.attempt, train.outcome, train.non_retryable_failure) == (1, "failed", True)
    # Nothing but the attempt's log (no checkpoint, no control), which names the refusal.
    left = [o.key for o in store.list(settings.runs_bucket, f"runs/{handle.id}/")]
    log_key = f"runs/{handle.id}/logs/attempt-1.log"
    assert left == [log_key], left
    assert message in store.get_bytes(settings.runs_bucket, log_key).decode()


async def wait_for_details(
    handle: WorkflowHandle, check: Callable[[dict[str, Any]], bool], *, timeout: float = 120.0
) -> dict[str, Any]:
    """Poll the pending train activity's heartbeat details until ``check`` holds."""

    async def satisfied() -> dict[str, Any] | None:
        details = heartbeat_details(await handle.describe())
        return details if details is not None and check(details) else None

    return await eventually(
        satisfied, timeout=timeout, message="heartbeat details never satisfied the check"
    )


async def wait_for_attempt(
    handle: WorkflowHandle, attempt: int, *, started: bool = True, timeout: float = 60
) -> None:
    """Wait until the train activity is in ``attempt`` (running on a worker, if ``started``)."""

    async def reached() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        running = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        return bool(
            pending
            and pending[0].attempt >= attempt
            and (pending[0].state == running or not started)
        )

    await eventually(reached, timeout=timeout, message=f"attempt {attempt} not reached")


async def test_sigkilled_worker_is_resumed_from_its_checkpoint_by_another(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    worker_process: Callable[..., WorkerProcess],
    snapshot: SnapshotRef,
) -> None:
    epochs = 15
    first = worker_process("gpu")
    async with workflow_worker(client, queues, store):
        request = _request(snapshot, _hp(epochs), heartbeat_timeout_seconds=5)
        handle = await start(client, queues, request)
        details = await wait_for_details(handle, lambda d: (d.get("epoch") or 0) >= 1)
        first.kill()  # SIGKILL mid-training: no cleanup, as on a lost node
        second = worker_process("gpu")
        result = await handle.result()
    assert details["epoch"] < epochs, "training finished before the kill"
    assert result.attempt == 2
    assert result.resumed_from_epoch is not None and result.resumed_from_epoch >= 1
    assert result.resumed_from_epoch >= details["epoch"]
    assert result.epochs_done == result.epochs_requested == epochs
    csv = store.get_bytes(settings.runs_bucket, result.results_csv_key).decode().splitlines()
    assert [int(float(line.split(",")[0])) for line in csv[1:]] == list(range(1, epochs + 1))
    assert "Resuming training" in second.log()
    log = store.get_bytes(settings.runs_bucket, f"runs/{handle.id}/logs/attempt-2.log").decode()
    assert f"resuming from epoch {result.resumed_from_epoch}" in log, log
    assert f"finished: {epochs}/{epochs} epochs (completed)" in log, log


async def test_corrupted_checkpoint_falls_back_to_the_previous_one(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    worker_process: Callable[..., WorkerProcess],
    snapshot: SnapshotRef,
) -> None:
    epochs = 15
    first = worker_process("gpu")
    async with workflow_worker(client, queues, store):
        request = _request(snapshot, _hp(epochs), heartbeat_timeout_seconds=5)
        handle = await start(client, queues, request)
        details = await wait_for_details(handle, lambda d: len(d.get("checkpoints") or []) >= 2)
        first.kill()
        # Once the server gives attempt 1 up for dead (heartbeat timeout), nothing the dead
        # worker had in flight can still land: its final heartbeat and checkpoints stand.
        await wait_for_attempt(handle, 2, started=False)
        details = heartbeat_details(await handle.describe()) or details
        newest, previous = details["checkpoints"][0], details["checkpoints"][1]
        # Bit rot / tampering: every checkpoint at or after the heartbeated newest is garbage.
        for key in _checkpoints(store, settings, handle.id):
            if (epoch_of_key(key) or 0) >= newest["epoch"]:
                garbage = b"not a checkpoint" * 64
                store.client.put_object(
                    settings.runs_bucket, key, io.BytesIO(garbage), len(garbage)
                )
        async with run_workers(kinds=("gpu",)):
            result = await handle.result()
    assert result.attempt == 2
    assert result.resumed_from_epoch == previous["epoch"]
    assert result.epochs_done == result.epochs_requested == epochs


async def test_sigterm_hands_the_checkpoint_over_without_waiting_for_a_timeout(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    worker_process: Callable[..., WorkerProcess],
    snapshot: SnapshotRef,
) -> None:
    epochs = 15
    first = worker_process("gpu")
    async with workflow_worker(client, queues, store):
        request = _request(snapshot, _hp(epochs), heartbeat_timeout_seconds=60)
        handle = await start(client, queues, request)
        details = await wait_for_details(handle, lambda d: (d.get("epoch") or 0) >= 1)
        exit_code = await asyncio.to_thread(first.terminate, 60)
        async with run_workers(kinds=("gpu",)):
            result = await handle.result()
        train = only(activities_in(await handle.fetch_history()), names.TRAIN)
    assert exit_code == 0
    assert "worker shutting down" in first.log()
    # Attempt 1 ended by handing over (its own retryable error), not by a timeout: the
    # heartbeat timeout (60 s) never had to expire.
    failure = train.last_failure
    assert train.attempt == 2 and failure is not None
    assert failure.application_failure_info.type == "WorkerShutdown", failure
    assert result.attempt == 2 and result.resumed_from_epoch is not None
    assert result.resumed_from_epoch >= details["epoch"]
    assert result.epochs_done == epochs


async def test_fine_tunes_from_an_s3_checkpoint_and_refuses_bad_bases(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    snapshot: SnapshotRef,
    tmp_path: Path,
) -> None:
    from ultralytics import YOLO

    weights = tmp_path / "pretrained.pt"
    YOLO("yolov8n.yaml").save(str(weights))
    key = f"pretrained/{uuid.uuid4().hex[:8]}/yolov8n.pt"
    store.put_file(settings.models_bucket, key, weights)
    good = S3Base(bucket=settings.models_bucket, key=key, sha256=sha256_of(weights.read_bytes()))
    bad_bases = {
        "IntegrityError": good.model_copy(update={"sha256": "0" * 64}),
        "NotFoundError": RegistryBase(model="no-such-model", version="3"),
    }
    async with workflow_worker(client, queues, store), run_workers(kinds=("gpu",)):
        result = await (await start(client, queues, _request(snapshot, _hp(2), base=good))).result()
        for error, base in bad_bases.items():
            handle = await start(client, queues, _request(snapshot, _hp(2), base=base))
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            cause = failure.value.cause.cause
            assert isinstance(cause, ApplicationError) and cause.non_retryable
            assert cause.type == error, cause.message
    assert result.epochs_done == 2 and result.resumed_from_epoch is None
