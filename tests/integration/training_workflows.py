"""Test-only workflow and helpers for the training activity tests and ``bench/recovery.py``.

:class:`TrainOnlyWorkflow` runs the ``train`` activity by name on a GPU queue with a retry
policy, and its ``stop_early`` signal runs ``write_control`` on the CPU queue, the way the
retrain pipeline does. It is registered only on workers the tests create themselves.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.dataset import SnapshotRef
    from activities.contracts.training import (
        TrainRequest,
        TrainResult,
        WriteControlRequest,
        WriteControlResult,
    )

NON_RETRYABLE = ["BadInputError", "ConfigurationError", "IntegrityError", "NotFoundError"]


class TrainOnlyParams(BaseModel):
    """Not a Contract on purpose: test-only, so it needs no entry in contract_examples."""

    request: TrainRequest
    gpu_queue: str
    cpu_queue: str
    max_attempts: int = 3


@workflow.defn(name="TrainOnlyWorkflow")
class TrainOnlyWorkflow:
    @workflow.init
    def __init__(self, params: TrainOnlyParams) -> None:
        self._cpu_queue = params.cpu_queue

    @workflow.run
    async def run(self, params: TrainOnlyParams) -> TrainResult:
        request = params.request
        return await workflow.execute_activity(
            names.TRAIN,
            request,
            result_type=TrainResult,
            task_queue=params.gpu_queue,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200),
                maximum_attempts=params.max_attempts,
                non_retryable_error_types=NON_RETRYABLE,
            ),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    @workflow.signal
    async def stop_early(self, reason: str = "") -> None:
        await workflow.execute_activity(
            names.WRITE_CONTROL,
            WriteControlRequest(run_id=workflow.info().workflow_id, reason=reason),
            result_type=WriteControlResult,
            task_queue=self._cpu_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )


def make_snapshot(
    settings: Any, store: Any, *, count: int = 16, seed: int = 7, size: int = 96
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
