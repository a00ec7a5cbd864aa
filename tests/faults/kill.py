"""SIGKILL a worker *inside* a stage, and prove it from Temporal's own records.

A :class:`WorkerPool` keeps two warmed worker processes (:mod:`tests.helpers.warm_worker`)
on the test's queues, so that after a kill the other one takes the retried attempt at once
while a replacement warms up. :func:`kill_inside` waits until the workflow's description
shows the stage's activity running (state STARTED, first attempt) on one of the pool's
processes, waits for a seeded point inside it, checks the description once more and kills
exactly the process the server names (``last_worker_identity``). The history then has to
show that very activity retried after a heartbeat timeout (:func:`landed`); a kill that came
too late (the activity had ended) is reported as missed and the trial is drawn again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from activities.contracts import names
from tests.helpers.history import ActivityRecord, Pending, pending, serving
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, WorkerProcess

STAGE_ACTIVITY = {
    "assembling": names.ASSEMBLE_DATASET,
    "training": names.TRAIN,
    "evaluating": names.EVALUATE,
    "exporting": names.EXPORT,
    "publishing": names.PUBLISH,
}
PIPELINE = [names.ASSEMBLE_DATASET, names.TRAIN, names.EVALUATE, names.EXPORT, names.PUBLISH,
            names.NOTIFY]  # fmt: skip
SHORT_STAGE_DELAY = {"assembling": 0.1, "evaluating": 0.1, "exporting": 0.3, "publishing": 0.05}
"""Longest seeded delay (s) after a short activity is seen running (they last ~0.2-2 s)."""


class WorkerPool:
    """Warm worker processes serving both queues; one is killed, a new one replaces it."""

    def __init__(
        self, start: Callable[..., WorkerProcess], client: Client, queues: Queues, size: int = 2
    ) -> None:
        self._start = start
        self.client = client
        self.queues = queues
        self.workers = [start("cpu,gpu", warm=True) for _ in range(size)]
        self._serving_pids: set[int] = set()

    def owner(self, identity: str) -> WorkerProcess | None:
        """The live pool process with this Temporal worker identity."""
        return next((w for w in self.workers if w.identity == identity and w.alive()), None)

    async def _serving(self, worker: WorkerProcess) -> bool:
        """Whether ``worker`` polls both queues (remembered: it polls until it is killed)."""
        assert worker.alive(), f"worker {worker.pid} died:\n{worker.log()[-3000:]}"
        if worker.pid in self._serving_pids:
            return True
        for queue in (self.queues.cpu, self.queues.gpu):
            if not await serving(self.client, queue, worker.identity):
                return False
        self._serving_pids.add(worker.pid)
        return True

    async def ready(self, timeout: float = 240) -> None:
        """Wait until every pool process polls both queues (imports done, connected)."""

        async def all_serving() -> bool:
            return all([await self._serving(worker) for worker in self.workers])

        await eventually(all_serving, timeout=timeout, interval=0.5, message="pool serving")

    async def standby_for(self, victim: WorkerProcess, timeout: float = 240) -> None:
        """Wait until another pool process serves both queues (it will take the retry)."""

        async def standby() -> bool:
            others = [w for w in self.workers if w is not victim]
            return any([await self._serving(worker) for worker in others])

        await eventually(standby, timeout=timeout, interval=0.2, message="a warm standby")

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL ``worker`` and start its (warming) replacement."""
        worker.kill()
        self.workers = [w for w in self.workers if w is not worker]
        self.workers.append(self._start("cpu,gpu", warm=True))


@dataclass(frozen=True)
class Kill:
    """A SIGKILL delivered while the server showed the activity running on that process."""

    activity: str
    worker: str
    at: float
    heartbeat: dict | None


def newest_checkpoint(heartbeat: dict | None) -> int:
    """Epoch of the newest checkpoint a training heartbeat names (0: none yet)."""
    refs = (heartbeat or {}).get("checkpoints") or []
    return max((int(ref["epoch"]) for ref in refs), default=0)


async def _running(handle: WorkflowHandle, activity: str, pool: WorkerPool) -> Pending | str | None:
    """The activity running (first attempt) on a pool process; "missed" once it is past."""
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return "missed"
    for item in pending(description):
        if item.name == activity:
            ours = item.started and item.attempt == 1 and pool.owner(item.worker) is not None
            return item if ours else None
        if item.name in PIPELINE and PIPELINE.index(item.name) > PIPELINE.index(activity):
            return "missed"
    return None


async def kill_inside(
    handle: WorkflowHandle, stage: str, pool: WorkerPool, rng: random.Random, *, epochs: int
) -> Kill | None:
    """Kill the process running ``stage``'s activity at a seeded point; None: it ended first.

    Training: after the checkpoint of a seeded epoch (1 .. epochs-1) is heartbeated, plus a
    seeded part of an epoch. Other stages: a seeded delay of at most
    :data:`SHORT_STAGE_DELAY` after the activity is first seen running.
    """
    activity = STAGE_ACTIVITY[stage]

    async def seen(check: Callable[[Pending], bool]) -> Pending | str:
        async def look() -> Pending | str | None:
            item = await _running(handle, activity, pool)
            return item if isinstance(item, str) or (item and check(item)) else None

        return await eventually(look, timeout=300, interval=0.02, message=f"{activity} running")

    if stage == "training":
        epoch = rng.randint(1, epochs - 1)
        first = await seen(lambda item: newest_checkpoint(item.heartbeat) >= epoch)
        delay = rng.uniform(0, 0.8)
    else:
        first = await seen(lambda item: True)
        delay = rng.uniform(0, SHORT_STAGE_DELAY[stage])
    if isinstance(first, str):
        return None
    victim = pool.owner(first.worker)
    assert victim is not None
    await pool.standby_for(victim)  # normally at once: the last replacement warmed meanwhile
    await asyncio.sleep(delay)  # the seeded point inside the activity (not a synchronisation)
    now = await _running(handle, activity, pool)
    if not isinstance(now, Pending) or now.worker != first.worker:
        return None
    pool.kill(victim)
    return Kill(activity, now.worker, time.time(), now.heartbeat)


def landed(kill: Kill | None, record: ActivityRecord) -> bool:
    """The history proves the kill: that activity's first attempt went silent and another
    worker ran the retried attempt."""
    return (
        kill is not None
        and record.retried_after_heartbeat_timeout
        and record.worker != kill.worker
        and record.outcome == "completed"
    )
