"""Training helpers for tests and ``bench/recovery.py``: a real snapshot, heartbeat details,
and :class:`~tests.helpers.stage_workflows.TrainOnlyWorkflow` run on the test's queues."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.contracts.dataset import SnapshotRef
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.control import ControlActivities
from tests.helpers.stage_workflows import TrainOnlyParams, TrainOnlyWorkflow

if TYPE_CHECKING:
    from activities.contracts.training import TrainRequest, TrainResult
    from tests.helpers.stack import Queues


def make_snapshot(
    settings: Settings, store: ObjectStore, *, count: int = 16, seed: int = 7, size: int = 96
) -> SnapshotRef:
    """Upload ``count`` synthetic images and assemble a train/val snapshot of them."""
    from temporalio.testing import ActivityEnvironment

    from activities.contracts.dataset import AssembleRequest, MinCounts, SplitRatios
    from activities.dataset import DatasetActivities
    from workers.dev import synthetic

    tag = uuid.uuid4().hex[:8]
    prefix = f"datasets/train-{tag}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=count, seed=seed, size=size
    )
    request = AssembleRequest(
        dataset=f"shapes-{tag}",
        prefix=prefix,
        split_ratios=SplitRatios(train=0.75, val=0.25, test=0.0),
        min_counts=MinCounts(train=1, val=1, test=0),
    )
    activities = DatasetActivities(settings, store)
    result = ActivityEnvironment().run(activities.assemble_dataset, request)
    return result.snapshot


def heartbeat_details(description: Any) -> dict[str, Any] | None:
    """The pending train activity's last heartbeat details from ``handle.describe()``."""
    pending = description.raw_description.pending_activities
    if not pending or not pending[0].heartbeat_details.payloads:
        return None
    return json.loads(pending[0].heartbeat_details.payloads[0].data)


@asynccontextmanager
async def workflow_worker(
    client: Client, queues: Queues, store: ObjectStore
) -> AsyncIterator[None]:
    """The test workflow and write_control on the test's CPU queue, in process."""
    control = ControlActivities(queues.settings, store)
    worker = Worker(
        client,
        task_queue=queues.cpu,
        workflows=[TrainOnlyWorkflow],
        activities=[control.write_control],
        activity_executor=ThreadPoolExecutor(2),
    )
    async with worker:
        yield


async def start(
    client: Client, queues: Queues, request: TrainRequest, *, max_attempts: int = 3
) -> WorkflowHandle[TrainOnlyWorkflow, TrainResult]:
    return await client.start_workflow(
        TrainOnlyWorkflow.run,
        TrainOnlyParams(
            request=request, gpu_queue=queues.gpu, cpu_queue=queues.cpu, max_attempts=max_attempts
        ),
        id=f"train-{uuid.uuid4().hex[:10]}",
        task_queue=queues.cpu,
        execution_timeout=timedelta(minutes=10),
    )
