"""Fault injection on the real stack: the run completes once, the registry stays consistent.

Short seeded version (one trial per kind) in CI; the long one on demand::

    SENTINEL_FAULT_TRIALS=20 .venv/bin/pytest tests/faults -q -s

After every trial: exactly one new version (with metadata), production consistent with the
gate, and no object outside the run's own places (``runs/{workflow_id}/``, the registry's
``models/{name}/`` layout, ``snapshots/{dataset}/{sha256}.json``).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from activities.contracts.retrain import RetrainRequest, RetrainResult
from activities.infra.connection import connect
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry.core import Registry
from tests.faults.conftest import SEED, TABLE, TRIALS, Row
from tests.faults.proxy import FaultyProxy
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, RunWorkers, WorkerProcess, sentinel_for
from workers.dev import synthetic
from workers.dev.stack import TemporalDevServer, free_port
from workers.factory import build_worker
from workflows.client import RetrainAlreadyRunningError, SentinelClient

pytestmark = pytest.mark.timeout(300 + 420 * TRIALS)
ORDER = ("queued", "assembling", "training", "evaluating", "awaiting_approval", "exporting",
         "publishing", "notifying", "succeeded", "failed", "canceled")  # fmt: skip
KILL_STAGES = ("assembling", "training", "evaluating", "exporting", "publishing")
HEARTBEAT = 12.0  # seconds: how long a SIGKILLed worker's activity takes to be noticed


@pytest.fixture(scope="module")
def prefix(settings: Settings, store: ObjectStore) -> str:
    prefix = f"datasets/faults-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=3, verified=True
    )
    return prefix


def fault_request(prefix: str, queues: Queues, epochs: int = 1) -> RetrainRequest:
    return tiny_retrain_request(
        prefix,
        queues,
        epochs=epochs,
        stage_heartbeat_timeout_seconds=HEARTBEAT,
        train_heartbeat_timeout_seconds=HEARTBEAT,
    )


# ---------------------------------------------------------------------- invariants
def audit(store: ObjectStore, settings: Settings, model: str, workflow_id: str) -> dict:
    """Versions with metadata, production, and every object outside the run's own places."""
    keys = [o.key for o in store.list(settings.models_bucket, f"models/{model}/")]
    m = re.escape(model)
    allowed = re.compile(
        rf"^models/{m}/(v\d+/[\w.-]+|claims/v\d+\.json|publishes/[0-9a-f]+\.json|"
        r"aliases/(production|latest)\.json|aliases/history/\d+\.json)$"
    )
    versions = sorted(
        int(g.group(1)) for k in keys if (g := re.match(rf"^models/{m}/v(\d+)/metadata\.json$", k))
    )
    dirs = {int(g.group(1)) for k in keys if (g := re.match(rf"^models/{m}/v(\d+)/", k))}
    orphans = [k for k in keys if not allowed.match(k)]
    orphans += [f"models/{model}/v{v}/ (no metadata.json)" for v in sorted(dirs - set(versions))]
    runs = [o.key for o in store.list(settings.runs_bucket, "")]
    orphans += [k for k in runs if not k.startswith("runs/")]
    orphans += [k for k in runs if model in k and not k.startswith(f"runs/{workflow_id}/")]
    orphans += [
        k for k in runs if k.startswith(f"runs/{workflow_id}/") and re.search(r"\.(tmp|part)$", k)
    ]
    data = [o.key for o in store.list(settings.data_bucket, "snapshots/")]
    orphans += [
        k
        for k in data
        if k.startswith(f"snapshots/{model}/") and not re.match(r".*/[0-9a-f]{64}\.json$", k)
    ]
    production = Registry(store, settings.models_bucket).production_version(model)
    return {"versions": versions, "orphans": orphans, "production": production}


def record(
    kind: str,
    started: float,
    found: dict,
    result: RetrainResult | None,
    *,
    expect_version: bool = True,
) -> None:
    """Add one trial to the table (assertions come after, so failures are counted too)."""
    row = TABLE.setdefault(kind, Row())
    row.trials += 1
    row.seconds += time.monotonic() - started
    row.completed += result is not None
    row.duplicates += len(found["versions"]) > 1
    want_production = 1 if result is not None and result.promoted else None
    row.lost_production += result is not None and found["production"] != want_production
    row.orphans += len(found["orphans"])
    row.notes.extend(found["orphans"][:3])


def check(found: dict, result: RetrainResult | None) -> None:
    assert result is not None and result.version == 1
    assert found["versions"] == [1], found
    assert found["production"] == (1 if result.promoted else None), found
    assert found["orphans"] == [], found


async def wait_past(sentinel: SentinelClient, model: str, stage: str, timeout: float = 300) -> str:
    """Poll progress until the run is in ``stage`` or later; returns the stage seen."""

    async def reached() -> str | None:
        seen = (await sentinel.progress(model)).stage
        return seen if ORDER.index(seen) >= ORDER.index(stage) else None

    # Exception: not started yet, or no worker to answer.
    return await eventually(
        reached, timeout=timeout, interval=0.05, ignore=Exception, message=f"never reached {stage}"
    )


# ---------------------------------------------------------------------- worker SIGKILL
async def test_sigkill_the_worker_in_each_stage(
    client: Client,
    queues: Queues,
    worker_process: Callable[..., WorkerProcess],
    store: ObjectStore,
    settings: Settings,
    prefix: str,
) -> None:
    """SIGKILL the one worker process (both queues) at a seeded point of each stage."""
    sentinel = sentinel_for(client, queues)
    worker = worker_process("cpu,gpu")
    failures = []
    for stage in KILL_STAGES:
        rng = random.Random(f"{SEED}-kill-{stage}")
        kind = f"SIGKILL worker while {stage}"
        for _ in range(TRIALS):
            started = time.monotonic()
            request = fault_request(prefix, queues, epochs=3 if stage == "training" else 1)
            model = request.model_name
            await sentinel.start_retrain(request)
            seen = await wait_past(sentinel, model, stage)
            await asyncio.sleep(rng.uniform(0, 2.5 if stage == "training" else 0.4))
            worker.kill()
            worker = worker_process("cpu,gpu")  # the replacement serves the next trial too
            result = None
            try:
                result = await asyncio.wait_for(sentinel.result(model), 360)
            except Exception as exc:  # counted in the table, asserted below
                failures.append(f"{kind}: {exc!r} {getattr(exc, 'cause', None)!r}")
            found = audit(store, settings, model, f"retrain-{model}")
            record(kind, started, found, result)
            if seen != stage:
                TABLE[kind].notes.append(f"kill landed after {stage} (seen {seen})")
            try:
                check(found, result)
            except AssertionError as exc:
                failures.append(f"{kind}: {exc}")
    assert not failures, failures


# ---------------------------------------------------------------------- Temporal restart
async def test_temporal_server_killed_and_restarted_during_training(
    tmp_path: Path, settings: Settings, store: ObjectStore, prefix: str
) -> None:
    server = TemporalDevServer(tmp_path / "temporal", port=free_port(), ui_port=None)
    server.start()
    own = settings.model_copy(
        update={
            "temporal_address": server.address,
            "cpu_task_queue": f"f-cpu-{uuid.uuid4().hex[:6]}",
            "gpu_task_queue": f"f-gpu-{uuid.uuid4().hex[:6]}",
        }
    )
    queues = Queues(own.cpu_task_queue, own.gpu_task_queue, own)
    own_client = await connect(own)
    workers = [build_worker(own_client, own, kind, store=store) for kind in ("cpu", "gpu")]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    rng = random.Random(f"{SEED}-temporal")
    kind = "Temporal server killed during training"
    try:
        sentinel = sentinel_for(own_client, queues)
        for _ in range(TRIALS):
            started = time.monotonic()
            request = fault_request(prefix, queues, epochs=3)
            await sentinel.start_retrain(request)
            await wait_past(sentinel, request.model_name, "training")
            await asyncio.sleep(rng.uniform(0, 2.0))
            server.kill()
            await asyncio.sleep(rng.uniform(1, 4))
            server.start()
            result = await asyncio.wait_for(sentinel.result(request.model_name), 360)
            found = audit(store, settings, request.model_name, f"retrain-{request.model_name}")
            record(kind, started, found, result)
            check(found, result)
    finally:
        for worker in workers:
            await worker.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.stop()


# ---------------------------------------------------------------------- S3 outage
@pytest.mark.parametrize("during", ["assembling", "publishing"])
async def test_s3_unavailable_for_a_while(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    s3_server: object,
    prefix: str,
    during: str,
) -> None:
    """Workers reach S3 through a proxy that cuts all traffic for a few seconds."""
    host, port = settings.s3_endpoint.rsplit(":", 1)
    proxy = FaultyProxy(host, int(port)).start()
    own = queues.settings.model_copy(update={"s3_endpoint": proxy.endpoint})
    workers = [build_worker(client, own, kind) for kind in ("cpu", "gpu")]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    rng = random.Random(f"{SEED}-s3-{during}")
    kind = f"S3 unavailable while {during}"
    try:
        sentinel = sentinel_for(client, queues)
        for _ in range(TRIALS):
            started = time.monotonic()
            request = fault_request(prefix, queues)
            model = request.model_name
            # The first request of the stage starts the outage (forwarded, then cut).
            marker = (
                f" /{settings.data_bucket}".encode()
                if during == "assembling"
                else f"PUT /{settings.models_bucket}/models/{model}/".encode()
            )
            outages = proxy.outages
            proxy.arm(marker, seconds=rng.uniform(2, 6), delay=rng.uniform(0, 0.2))
            await sentinel.start_retrain(request)
            result = await asyncio.wait_for(sentinel.result(model), 360)
            found = audit(store, settings, model, f"retrain-{model}")
            record(kind, started, found, result)
            assert proxy.outages == outages + 1, "the outage never started"
            check(found, result)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        proxy.stop()


# ---------------------------------------------------------------------- races
async def test_two_starts_for_the_same_model_at_the_same_instant(
    client: Client, queues: Queues, prefix: str
) -> None:
    """No worker needed: the start itself is the race."""
    sentinel = sentinel_for(client, queues)
    kind = "two starts at the same instant"
    for _ in range(TRIALS):
        started = time.monotonic()
        request = fault_request(prefix, queues)
        outcomes = await asyncio.gather(
            sentinel.start_retrain(request), sentinel.start_retrain(request), return_exceptions=True
        )
        ids = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if isinstance(o, RetrainAlreadyRunningError)]
        row = TABLE.setdefault(kind, Row())
        row.trials += 1
        row.completed += len(ids) == 1 and len(refused) == 1
        row.duplicates += len(ids) > 1
        row.seconds += time.monotonic() - started
        await sentinel.handle(request.model_name).terminate("fault test done")
        assert len(ids) == 1 and len(refused) == 1, outcomes
        assert ids[0] in str(refused[0])


async def test_cancel_racing_with_publish(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
) -> None:
    """Cancel as publishing starts: CANCELED with nothing published, or COMPLETED once."""
    sentinel = sentinel_for(client, queues)
    rng = random.Random(f"{SEED}-cancel-publish")
    kind = "cancel racing with publish"
    outcomes: list[str] = []
    async with run_workers():
        for _ in range(TRIALS):
            started = time.monotonic()
            request = fault_request(prefix, queues)
            model = request.model_name
            await sentinel.start_retrain(request)
            await wait_past(sentinel, model, "publishing")
            await asyncio.sleep(rng.uniform(0, 0.3))
            await sentinel.cancel(model)
            result = None
            try:
                result = await asyncio.wait_for(sentinel.result(model), 120)
            except WorkflowFailureError as exc:
                assert isinstance(exc.cause, CancelledError), exc.cause
            status = await sentinel.status(model)
            if status == WorkflowExecutionStatus.CANCELED:
                # A canceled workflow does not wait for its publish activity to stop: give
                # a publish that was still running the time to finish (or not) first.
                await asyncio.sleep(5)
            found = audit(store, settings, model, f"retrain-{model}")
            record(kind, started, found, result)
            outcomes.append(
                f"{status.name if status else None} versions={found['versions']} "
                f"production={found['production']}"
            )
            TABLE[kind].notes.append(outcomes[-1])
            assert found["orphans"] == [], found
            if status == WorkflowExecutionStatus.COMPLETED:
                check(found, result)
                continue
            # CANCELED only when the cancel landed before publishing started: nothing written.
            assert status == WorkflowExecutionStatus.CANCELED
            assert found["versions"] == [] and found["production"] is None, found
