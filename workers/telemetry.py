"""Operator metrics of a worker: one Prometheus endpoint on ``SENTINEL_METRICS_PORT``.

What it serves:

- ours (:mod:`activities.infra.metrics`): training progress, images/s, checkpoint uploads,
  resumes, GPU memory, assembly findings, publish outcomes, MLflow backlog, and per activity
  type the running count, retries, failures and the last heartbeat (this module's
  :class:`ActivityMetricsInterceptor`);
- the Temporal SDK's runtime metrics (``temporal_*``: task slots, poll and schedule-to-start
  latencies, activity and workflow task failures). The SDK serves them from its native core
  on a loopback port of its own; :class:`SdkMetricsCollector` folds them into our endpoint, so
  a scraper needs one port per pod;
- on CPU workers, :class:`RetrainWatch` samples running retrains (stage, approval waiting
  time) every minute through the ``progress`` query: an approval wait has no activity, so no
  worker would otherwise know about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.contracts import names
from activities.contracts.retrain import Progress
from activities.infra import metrics
from activities.infra.settings import Settings

log = logging.getLogger(__name__)

SDK_SCRAPE_TIMEOUT_SECONDS = 2.0
WATCH_INTERVAL_SECONDS = 60.0
WATCH_MAX_RUNS = 200
"""Running retrains sampled per round (one cheap query each)."""
WATCH_CONCURRENT_QUERIES = 8
QUERY_TIMEOUT_SECONDS = 5.0


def _loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SdkMetricsCollector(Collector):
    """The Temporal SDK's metrics, read from its loopback endpoint at each scrape."""

    def __init__(self, url: str) -> None:
        self.url = url

    def collect(self) -> Iterator[Metric]:
        try:
            with urllib.request.urlopen(self.url, timeout=SDK_SCRAPE_TIMEOUT_SECONDS) as reply:
                text = reply.read().decode()
        except OSError as exc:  # the core not yet listening: our metrics are still served
            log.debug("Temporal SDK metrics not read from %s: %s", self.url, exc)
            return
        yield from text_string_to_metric_families(text)


@dataclass
class Telemetry:
    """The served endpoint and the SDK runtime whose metrics it includes."""

    port: int
    runtime: Runtime
    server: Any

    def close(self) -> None:
        self.server.shutdown()


def start_metrics(settings: Settings) -> Telemetry | None:
    """Serve ``/metrics`` on ``settings.metrics_port`` (all interfaces); None when it is 0.

    Returns the SDK runtime to connect the Temporal client with, so that the SDK's metrics
    are recorded (the runtime of a client cannot be changed afterwards).
    """
    if not settings.metrics_port:
        return None
    sdk_address = f"127.0.0.1:{_loopback_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=sdk_address, counters_total_suffix=True, durations_as_seconds=True
            )
        )
    )
    REGISTRY.register(SdkMetricsCollector(f"http://{sdk_address}/metrics"))
    server, _thread = start_http_server(settings.metrics_port, addr="0.0.0.0")
    log.info("metrics on :%d/metrics", settings.metrics_port)
    return Telemetry(settings.metrics_port, runtime, server)


# ---------------------------------------------------------------------- activities
class ActivityMetricsInterceptor(Interceptor):
    """Counts attempts, retries and failures and records heartbeats of every activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)


class _ActivityInbound(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_ActivityOutbound(outbound))

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        kind, workflow_id = info.activity_type, info.workflow_id or ""
        if info.attempt > 1:
            metrics.ACTIVITY_RETRIES.labels(kind).inc()
        metrics.ACTIVITY_LAST_HEARTBEAT.labels(kind, workflow_id).set(time.time())
        running = metrics.ACTIVITIES_RUNNING.labels(kind)
        running.inc()
        try:
            return await super().execute_activity(input)
        except BaseException as exc:
            error = getattr(exc, "type", None) or type(exc).__name__
            metrics.ACTIVITY_FAILURES.labels(kind, str(error)).inc()
            raise
        finally:
            running.dec()
            # Two attempts of one activity on this worker: the other may have removed it.
            with contextlib.suppress(KeyError):
                metrics.ACTIVITY_LAST_HEARTBEAT.remove(kind, workflow_id)


class _ActivityOutbound(ActivityOutboundInterceptor):
    def heartbeat(self, *details: Any) -> None:
        info = self.info()
        metrics.ACTIVITY_LAST_HEARTBEAT.labels(info.activity_type, info.workflow_id or "").set(
            time.time()
        )
        super().heartbeat(*details)


# ---------------------------------------------------------------------- workflows
class RetrainWatch:
    """Samples running retrains: runs per stage, and how long each approval has waited."""

    def __init__(self, client: Client, *, interval: float = WATCH_INTERVAL_SECONDS) -> None:
        self.client = client
        self.interval = interval
        self._waiting: set[str] = set()
        self._stages: set[str] = set()
        self._queries = asyncio.Semaphore(WATCH_CONCURRENT_QUERIES)

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled (errors are logged, not raised)."""
        while True:
            try:
                await self.sample()
            except Exception as exc:  # Temporal unreachable for a while: try next round
                log.warning("retrain watch: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        """One round: list running retrains, query each one's progress, set the gauges."""
        query = f"WorkflowType = '{names.RETRAIN_WORKFLOW}' AND ExecutionStatus = 'Running'"
        runs = [
            (execution.id, execution.run_id)
            async for execution in self.client.list_workflows(query, limit=WATCH_MAX_RUNS)
        ]
        answers = await asyncio.gather(*(self._progress(*run) for run in runs))
        stages: dict[str, int] = {}
        waiting: dict[str, float] = {}
        now = datetime.now(UTC)
        for progress in answers:
            if progress is None:
                continue
            stages[progress.stage] = stages.get(progress.stage, 0) + 1
            asked = progress.approval_requested_at
            if progress.approval == "pending" and asked is not None:
                waiting[progress.model_name] = (now - asked).total_seconds()
        self._stages |= set(stages)  # a stage seen once reads 0 when it empties
        for stage in self._stages:
            metrics.RETRAINS_RUNNING.labels(stage).set(stages.get(stage, 0))
        for model, seconds in waiting.items():
            metrics.APPROVAL_WAITING_SECONDS.labels(model).set(max(0.0, seconds))
        for model in self._waiting - set(waiting):
            metrics.APPROVAL_WAITING_SECONDS.remove(model)
        self._waiting = set(waiting)

    async def _progress(self, workflow_id: str, run_id: str | None) -> Progress | None:
        """The run's ``progress`` query (None when no worker answers in time)."""
        async with self._queries:
            handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
            try:
                return await asyncio.wait_for(
                    handle.query(names.PROGRESS_QUERY, result_type=Progress), QUERY_TIMEOUT_SECONDS
                )
            except Exception as exc:  # no CPU worker answering right now
                log.debug("retrain watch: no progress of %s: %s", workflow_id, exc)
                return None
