"""A retrain resumed after its worker was SIGKILLed during training, for the recorder.

The first worker runs in a process of its own (``python -m tests.histories.kill ADDRESS
CPU_QUEUE GPU_QUEUE``: every workflow and the stub activities, with a ``train`` that never
ends). Once training started there (and an epoch was reported), the process is SIGKILLed: no
cleanup, as on a lost node. In-process stub workers then take over: the run's workflow task
on the dead worker's sticky queue times out and is replayed from history here, and the
training activity, silent past its heartbeat timeout, is attempted again and completes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.contracts import names
from activities.contracts.retrain import TrainingProgress
from tests.helpers.polling import eventually
from tests.helpers.stack import REPO_ROOT
from tests.workflows.harness import Harness, stub_workers
from tests.workflows.stubs import Stubs

HEARTBEAT_TIMEOUT = 5.0  # seconds: the smallest RetrainRequest allows; the kill is seen then
STICKY_TIMEOUT = timedelta(seconds=2)  # the dead worker's cached run moves on after this


async def _training_started(handle: WorkflowHandle[Any, Any]) -> bool:
    description = await handle.describe()
    return any(
        pending.activity_type.name == names.TRAIN
        and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for pending in description.raw_description.pending_activities
    )


async def resumed_after_worker_kill(h: Harness) -> WorkflowHandle[Any, Any]:
    """Start a retrain on a worker process, SIGKILL it mid-training, finish in process."""
    address = h.client.service_client.config.target_host
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.histories.kill", address, h.cpu, h.gpu],
        cwd=REPO_ROOT,
    )
    try:
        handle = await h.start(h.request(train_heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT))
        await eventually(lambda: _training_started(handle), timeout=60, message="training")
        first_epoch = TrainingProgress(epoch=1, epochs=5, metrics={"map50_95": 0.1})
        await handle.signal(names.TRAINING_PROGRESS_SIGNAL, first_epoch)
        await eventually(
            lambda: _showing_epoch(h, handle, 1), timeout=30, message="epoch 1 seen by the worker"
        )
    finally:
        worker.kill()
        worker.wait()
    async with stub_workers(h):
        await handle.result()
    return handle


async def _showing_epoch(h: Harness, handle: WorkflowHandle[Any, Any], epoch: int) -> bool:
    return (await h.progress(handle)).epoch == epoch


async def _serve(address: str, cpu: str, gpu: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    harness = Harness(client, Stubs(), cpu, gpu)
    harness.stubs.hold(names.TRAIN)  # never released: this process dies while training
    async with stub_workers(harness, sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(*sys.argv[1:4]))
