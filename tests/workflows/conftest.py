"""Workflow logic on stub activities: the real workflows, the real Temporal dev server.

The time-skipping test server (``WorkflowEnvironment.start_time_skipping()``) would let
approval timeouts pass instantly, but it downloads its binary on first use, which is
impossible offline (checked: "failed to download ephemeral server executable"). So these
tests run on the session's dev server (``tests/conftest.py``) and the timeout branches use
real, short timeouts (``approval.timeout_seconds=1``).

Each test gets a :class:`~tests.workflows.harness.Harness`: its own CPU and GPU task queues, a
CPU worker with every workflow the product registers and the CPU stubs (``workers/wiring.py``
decides both), a GPU worker with the GPU stubs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.workflows.harness import Harness
from tests.workflows.stubs import HEARTBEAT_EVERY, Stubs
from workers import wiring


@pytest.fixture
async def harness(temporal_client: Client) -> AsyncIterator[Harness]:
    """Stub workers on fresh queues for one test."""
    tag = uuid.uuid4().hex[:10]
    stubs = Stubs()
    harness = Harness(temporal_client, stubs, f"wf-cpu-{tag}", f"wf-gpu-{tag}")
    throttle = timedelta(seconds=HEARTBEAT_EVERY)
    common: dict[str, Any] = {
        "max_heartbeat_throttle_interval": throttle,
        "default_heartbeat_throttle_interval": throttle,
    }
    cpu = Worker(
        temporal_client,
        task_queue=harness.cpu,
        workflows=wiring.workflows(),
        activities=stubs.cpu_activities(),
        **common,
    )
    gpu = Worker(
        temporal_client, task_queue=harness.gpu, activities=stubs.gpu_activities(), **common
    )
    async with cpu, gpu:
        try:
            yield harness
        finally:
            await harness.close()
