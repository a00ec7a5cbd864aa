"""Building Temporal workers from settings: one per queue kind."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.infra.workflow_runs import WorkflowRuns
from activities.training.progress import ProgressReporter
from workers import wiring
from workers.telemetry import ActivityMetricsInterceptor
from workers.timing import TimingInterceptor
from workers.wiring import QueueKind


def task_queue_for(kind: QueueKind, settings: Settings) -> str:
    return settings.cpu_task_queue if kind == "cpu" else settings.gpu_task_queue


def build_worker(
    client: Client,
    settings: Settings,
    kind: QueueKind,
    *,
    store: ObjectStore | None = None,
    task_queue: str | None = None,
) -> Worker:
    """A worker for ``kind`` on its task queue (or ``task_queue``, for tests).

    Sync activities run in a thread pool sized to the queue's concurrency; a GPU worker runs
    one training per GPU by default. Heartbeats are throttled to at most
    ``heartbeat_throttle_seconds`` so a cancel reaches a running activity within seconds,
    whatever its heartbeat timeout. Every activity is counted and its heartbeats timed for
    the operator metrics (:mod:`workers.telemetry`), and every activity execution is timed
    per named cost (:mod:`workers.timing`).
    """
    store = store or ObjectStore.from_settings(settings)
    concurrency = settings.cpu_concurrency if kind == "cpu" else settings.gpu_concurrency
    # Sync activities run in threads; signals they send go through this (running) loop.
    loop = asyncio.get_running_loop()
    reporter = ProgressReporter(client, loop)
    acts = wiring.activities(kind, settings, store, reporter, runs=WorkflowRuns(client, loop))
    throttle = timedelta(seconds=settings.heartbeat_throttle_seconds)
    return Worker(
        client,
        task_queue=task_queue or task_queue_for(kind, settings),
        workflows=wiring.workflows() if kind == "cpu" else [],
        activities=acts,
        activity_executor=ThreadPoolExecutor(max_workers=concurrency + 1),
        max_concurrent_activities=concurrency,
        max_heartbeat_throttle_interval=throttle,
        default_heartbeat_throttle_interval=throttle,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        interceptors=[ActivityMetricsInterceptor(), TimingInterceptor()],
    )
