"""SIGKILL the worker running each stage's activity, proven from the server's records.

Short seeded version (one trial per stage) in CI; the long one on demand::

    SENTINEL_FAULT_TRIALS=5 .venv/bin/pytest tests/faults -q -s

Each kill lands while the workflow's description shows the stage's activity running on the
process killed (:mod:`tests.faults.kill`); the history must then show that activity retried
after a heartbeat timeout, else the trial is drawn again. Outcomes are judged from the object
store (:mod:`tests.faults.trials`); training kills also check the resume epoch the version
records against the checkpoints in storage when the retry was scheduled.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from activities.contracts import names
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.faults.audit import audit
from tests.faults.conftest import SEED, TABLE, TRIALS, Row
from tests.faults.kill import STAGE_ACTIVITY, WorkerPool, kill_inside, landed, newest_checkpoint
from tests.faults.trials import MAX_DRAWS, fault_request, fresh_dataset, judge, redraw
from tests.helpers.history import activities_in, only, pending
from tests.helpers.outside import objects
from tests.helpers.polling import eventually
from tests.helpers.stack import WorkerProcess, sentinel_for, unique_queues
from workflows.client import SentinelClient

pytestmark = pytest.mark.timeout(300 + 600 * TRIALS)
KILL_STAGES = ("assembling", "training", "evaluating", "exporting", "publishing")


# ---------------------------------------------------------------------- worker SIGKILL
@pytest.fixture(scope="module")
async def pool(
    client: Client, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerPool]:
    """Two warm worker processes on the module's own queues, serving every stage's trials."""
    queues = unique_queues(settings, "kill")
    logs = tmp_path_factory.mktemp("kill-workers")
    started: list[WorkerProcess] = []

    def start(kinds: str, *, warm: bool = False) -> WorkerProcess:
        worker = WorkerProcess(queues, kinds, logs / f"worker-{len(started)}.log", {}, warm=warm)
        started.append(worker)
        return worker

    pool = WorkerPool(start, client, queues)
    try:
        await pool.ready()
        yield pool
    finally:
        for worker in started:
            worker.close()


@pytest.mark.parametrize("stage", KILL_STAGES)
async def test_sigkill_the_worker_inside_a_stage(
    client: Client,
    pool: WorkerPool,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
    stage: str,
) -> None:
    """SIGKILL the worker process running the stage's activity, at a seeded point inside it.

    Two warm worker processes serve both queues; the one the server names as running the
    activity is killed, the other takes the retried attempt, a replacement warms up.
    """
    sentinel = sentinel_for(client, pool.queues)
    rng = random.Random(f"{SEED}-kill-{stage}")
    failures: list[str] = []
    for _ in range(TRIALS):
        failures += await kill_trial(sentinel, pool, store, settings, prefix, stage, rng)
    assert not failures, failures


async def kill_trial(
    sentinel: SentinelClient,
    pool: WorkerPool,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
    stage: str,
    rng: random.Random,
) -> list[str]:
    """One counted trial (drawn again while the kill misses); returns its problems."""
    kind = f"SIGKILL worker while {stage}"
    epochs = 3 if stage == "training" else 1
    for draw in range(1, MAX_DRAWS + 1):
        if stage == "assembling":  # new images: a real download the kill can land in
            prefix = fresh_dataset(store, settings, rng)
        started = time.monotonic()
        request = fault_request(prefix, pool.queues, epochs=epochs)
        model = request.model_name
        await sentinel.start_retrain(request)
        handle = sentinel.handle(model)
        kill = await kill_inside(handle, stage, pool, rng, epochs=epochs)
        resume_at = None
        if kill is not None and stage == "training":
            resume_at = await checkpoint_at_retry(handle, store, settings, epochs)
        result = None
        try:
            result = await asyncio.wait_for(sentinel.result(model), 360)
        except Exception as exc:  # judged below, with the store's state
            cause = getattr(exc, "cause", None)
            TABLE.setdefault(kind, Row()).notes.append(f"{model}: {exc!r} ({cause})")
        records = activities_in(await handle.fetch_history())
        record = only(records, STAGE_ACTIVITY[stage])
        spurious = [r.name for r in records if r.attempt > 1 and r is not record]
        if spurious:  # a heartbeat timeout without a kill: HEARTBEAT too low for this machine
            TABLE.setdefault(kind, Row()).notes.append(f"{model}: also retried {spurious}")
        proven = landed(kill, record)
        if not proven and draw < MAX_DRAWS and result is not None:
            missed = audit(store, settings, model)  # a missed kill must leave no damage either
            redraw(kind, f"{model}: kill={kill is not None}, attempts={record.attempt}")
            if missed.orphans or missed.broken or missed.versions != [1]:
                return [f"{kind} (missed kill): {missed}"]
            continue
        found, problems = judge(store, settings, kind, started, model, result, proven=proven)
        if stage == "training" and kill is not None and 1 in found.metadata:
            recorded = found.metadata[1]["resumed_from_epoch"]
            TABLE[kind].notes.append(
                f"killed after checkpoint {newest_checkpoint(kill.heartbeat)} was heartbeated; "
                f"newest checkpoint at the retry {resume_at}; the version records "
                f"resumed_from_epoch={recorded}"
            )
            if recorded != resume_at:
                problems.append(f"{kind}: resumed_from_epoch {recorded}, expected {resume_at}")
        return problems
    raise AssertionError("unreachable: the last draw is always judged")


async def checkpoint_at_retry(
    handle: WorkflowHandle[Any, Any], store: ObjectStore, settings: Settings, epochs: int
) -> int | None:
    """Newest resumable checkpoint in storage once the server gave the training up for dead.

    Listed when the retried attempt is scheduled, before it can write checkpoints of its own:
    what the retry must resume from (the final epoch is never a resume point). None when no
    retry came (the kill missed: the trial is drawn again).
    """

    async def retry_scheduled() -> tuple[bool, list[str]] | None:
        description = await handle.describe()
        train = [item for item in pending(description) if item.name == names.TRAIN]
        if not train or description.status != WorkflowExecutionStatus.RUNNING:
            return (False, [])  # training ended: no retry is coming
        if train[0].attempt < 2:
            return None
        return (True, list(objects(store, settings.runs_bucket, f"runs/{handle.id}/checkpoints/")))

    retried, keys = await eventually(
        retry_scheduled, timeout=120, interval=0.05, message="training retry scheduled"
    )
    epochs_found = [int(m.group(1)) for k in keys if (m := re.search(r"epoch-(\d{4})\.pt$", k))]
    resumable = [epoch for epoch in epochs_found if epoch < epochs]
    return max(resumable) if retried and resumable else None
