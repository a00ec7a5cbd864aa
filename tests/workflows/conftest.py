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

import pytest
from temporalio.client import Client

from tests.workflows.harness import Harness, stub_workers
from tests.workflows.stubs import Stubs


@pytest.fixture
async def harness(temporal_client: Client) -> AsyncIterator[Harness]:
    """Stub workers on fresh queues for one test."""
    tag = uuid.uuid4().hex[:10]
    harness = Harness(temporal_client, Stubs(), f"wf-cpu-{tag}", f"wf-gpu-{tag}")
    async with stub_workers(harness):
        try:
            yield harness
        finally:
            await harness.close()
