"""Infrastructure outages on the real stack: the Temporal server killed and restarted during
training, S3 unreachable (through a cutting proxy) while assembling or publishing. Each outage
is proven to have begun while the stage's activity ran (server event times)."""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from activities.contracts import names
from activities.infra.connection import connect
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.faults.conftest import SEED, TRIALS
from tests.faults.kill import STAGE_ACTIVITY
from tests.faults.proxy import FaultyProxy
from tests.faults.trials import (
    MAX_DRAWS,
    SERVER_HEARTBEAT,
    fault_request,
    fresh_dataset,
    judge,
    redraw,
)
from tests.helpers.history import activities_in, only, pending
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, sentinel_for
from workers.dev.stack import TemporalDevServer, free_port
from workers.factory import build_worker
from workflows.client import SentinelClient

pytestmark = pytest.mark.timeout(300 + 600 * TRIALS)


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
    failures: list[str] = []
    try:
        sentinel = sentinel_for(own_client, queues)
        for _ in range(TRIALS):
            started = time.monotonic()
            request = fault_request(prefix, queues, epochs=3, heartbeat=SERVER_HEARTBEAT)
            model = request.model_name
            await sentinel.start_retrain(request)
            running = functools.partial(training, sentinel.handle(model))
            await eventually(running, timeout=300, interval=0.05, message="training running")
            await asyncio.sleep(rng.uniform(0, 2.0))  # seeded point (not a synchronisation)
            running_at_kill = await running()
            server.kill()
            await asyncio.sleep(rng.uniform(1, 4))  # seeded downtime
            restarted = time.time()
            server.start()
            result = await asyncio.wait_for(sentinel.result(model), 360)
            history = await sentinel.handle(model).fetch_history()
            train = only(activities_in(history), names.TRAIN)
            # Running when the server died, finished after it came back.
            proven = running_at_kill and (train.closed_at or 0) > restarted
            _, problems = judge(store, settings, kind, started, model, result, proven=proven)
            failures += problems
    finally:
        for worker in workers:
            await worker.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.stop()
    assert not failures, failures


async def training(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the server shows the run's training activity running on a worker."""
    return any(i.name == names.TRAIN and i.started for i in pending(await handle.describe()))


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
    failures: list[str] = []
    try:
        sentinel = sentinel_for(client, queues)
        for _ in range(TRIALS):
            for draw in range(1, MAX_DRAWS + 1):
                if during == "assembling":  # new images: a real download the outage can cut
                    prefix = fresh_dataset(store, settings, rng)
                outcome = await outage_trial(
                    sentinel, queues, proxy, store, settings, prefix, during, rng, draw
                )
                if outcome is not None:
                    failures += outcome
                    break
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        proxy.stop()
    assert not failures, failures


async def outage_trial(
    sentinel: SentinelClient,
    queues: Queues,
    proxy: FaultyProxy,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
    during: str,
    rng: random.Random,
    draw: int,
) -> list[str] | None:
    """One draw; None when the outage began outside the stage (the caller draws again)."""
    kind = f"S3 unavailable while {during}"
    started = time.monotonic()
    request = fault_request(prefix, queues)
    model = request.model_name
    # The first request of the stage starts the outage (forwarded, then cut).
    marker = (
        f" /{settings.data_bucket}".encode()
        if during == "assembling"
        else f"PUT /{settings.models_bucket}/models/{model}/".encode()
    )
    outages = len(proxy.outage_times)
    proxy.arm(marker, seconds=rng.uniform(2, 6), delay=rng.uniform(0, 0.2))
    await sentinel.start_retrain(request)
    result = await asyncio.wait_for(sentinel.result(model), 360)
    history = await sentinel.handle(model).fetch_history()
    stage = only(activities_in(history), STAGE_ACTIVITY[during])
    began = proxy.outage_times[outages:]
    # The outage began while the stage's activity was running (server times).
    proven = len(began) == 1 and stage.scheduled_at <= began[0] <= (stage.closed_at or 0)
    if not proven and len(began) == 1 and draw < MAX_DRAWS:
        redraw(kind, f"{model}: the outage began after {during} ended")
        return None
    _, problems = judge(store, settings, kind, started, model, result, proven=proven)
    return problems
