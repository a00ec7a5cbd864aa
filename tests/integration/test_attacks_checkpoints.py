"""Attack (b): pickles planted in a run's checkpoint prefix for a retried attempt to find by
listing (real Temporal, real S3 server, real training, a worker process handing over on
SIGTERM). The retry ignores every checkpoint no signed sidecar vouches for, says so in its
log, and resumes from the one its own heartbeat vouches for; the planted payload never runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import Hyperparameters, TrainRequest
from activities.infra.settings import Settings
from activities.infra.signing import Keyring, sidecar_bytes, sidecar_key
from activities.infra.storage import ObjectStore
from activities.training.checkpoints import checkpoint_key
from tests.helpers.attacks import planted_pickle
from tests.helpers.outside import raw, sha256_of
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, RunWorkers, WorkerProcess
from tests.helpers.training import heartbeat_details, make_snapshot, start, workflow_worker

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def snapshot(settings: Settings, store: ObjectStore) -> SnapshotRef:
    return make_snapshot(settings, store, count=16, seed=13)


async def test_planted_newer_checkpoints_are_ignored_and_the_run_resumes_from_a_vouched_one(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    run_workers: RunWorkers,
    worker_process: Callable[..., WorkerProcess],
    snapshot: SnapshotRef,
    tmp_path: Path,
) -> None:
    """A worker hands its run over (SIGTERM); before the retry starts, pickles appear in the
    run's checkpoint prefix as newer epochs: one without a sidecar, one whose sidecar was
    signed with a guessed key. The retry ignores both (saying so) and resumes from the
    checkpoint its own heartbeat vouches for."""
    epochs = 8
    marker = tmp_path / "marker-the-attacker-wants"
    hp = Hyperparameters(
        epochs=epochs, imgsz=64, batch=4, seed=1, device="cpu", workers=0,
        extra={"mosaic": 0.0, "warmup_epochs": 0.0},
    )  # fmt: skip
    first = worker_process("gpu")
    async with workflow_worker(client, queues, store):
        request = TrainRequest(
            snapshot=snapshot, model_name="shapes", hyperparameters=hp, heartbeat_timeout_seconds=60
        )
        handle = await start(client, queues, request)

        async def checkpointed() -> dict | None:
            details = heartbeat_details(await handle.describe())
            return details if details and details.get("checkpoints") else None

        await eventually(checkpointed, timeout=150, message="no checkpoint heartbeated")
        assert await asyncio.to_thread(first.terminate, 90) == 0
        prefix = f"runs/{handle.id}/"
        bucket = settings.runs_bucket
        no_sidecar, forged = checkpoint_key(prefix, 7), checkpoint_key(prefix, 6)
        for epoch, key in ((7, no_sidecar), (6, forged)):
            path = planted_pickle(tmp_path / f"{epoch}.pt", marker, epoch=epoch, epochs=epochs)
            store.put_file(bucket, key, path)
        guessed = Keyring((("dev", b"0" * 64),))
        digest = sha256_of((tmp_path / "6.pt").read_bytes())
        store.put_bytes(bucket, sidecar_key(forged), sidecar_bytes(guessed, forged, digest))
        async with run_workers(kinds=("gpu",)):
            result = await handle.result()
    assert result.attempt == 2 and result.resumed_from_epoch is not None
    assert 1 <= result.resumed_from_epoch < 6, result
    assert result.epochs_done == epochs
    log = raw(store, bucket, f"runs/{handle.id}/logs/attempt-2.log").decode()
    assert (
        f"checkpoint {no_sidecar} (epoch 7) ignored: IntegrityError: no signed sidecar vouches "
        f"for {bucket}/{no_sidecar}: ignored, never unpickled"
    ) in log, log
    assert (
        f"checkpoint {forged} (epoch 6) ignored: IntegrityError: {bucket}/{sidecar_key(forged)} "
        "does not match its signature (key 'dev'): modified after signing"
    ) in log, log
    assert f"resuming from epoch {result.resumed_from_epoch}" in log, log
    assert not marker.exists()
