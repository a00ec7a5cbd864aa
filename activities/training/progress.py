"""Best-effort progress reports from sync activities to their workflow (as signals).

Sync activities run in worker threads and have no Temporal client of their own; the worker
hands this reporter its client and event loop. A report that cannot be delivered is logged
and dropped: progress is informational and must never slow or fail training.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.contracts import names
from activities.tracking import Tracking

log = logging.getLogger(__name__)


class ProgressReporter:
    """Signals ``signal_name`` with a payload to the workflow of the current activity."""

    def __init__(
        self, client: Client, loop: asyncio.AbstractEventLoop, timeout_seconds: float = 5.0
    ) -> None:
        self.client = client
        self.loop = loop
        self.timeout_seconds = timeout_seconds

    def report(self, signal_name: str, payload: object) -> bool:
        """Send now from an activity thread; True when the server accepted it."""
        info = activity.info()
        if not info.workflow_id:
            return False
        handle = self.client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
        future = asyncio.run_coroutine_threadsafe(handle.signal(signal_name, payload), self.loop)
        try:
            future.result(self.timeout_seconds)
            return True
        except FutureTimeout:
            future.cancel()
            log.warning("progress signal %s timed out", signal_name)
        except Exception as exc:  # the workflow may have ended, or be a test workflow
            log.info("progress signal %s not delivered: %s", signal_name, exc)
        return False


def _epoch_metrics(trainer: Any) -> dict[str, float]:
    raw = getattr(trainer, "metrics", None) or {}
    metrics = {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
    for name, key in (("map50", "metrics/mAP50(B)"), ("map50_95", "metrics/mAP50-95(B)")):
        if key in metrics:
            metrics[name] = metrics[key]
    return metrics


def training_progress_callbacks(
    reporter: ProgressReporter, tracking: Tracking | None = None
) -> dict[str, Callable[[Any], None]]:
    """Ultralytics callbacks that tell the workflow about each finished epoch (and about
    MLflow records that are late or lost, when tracking is on)."""
    from activities.contracts.retrain import TrainingProgress

    def on_fit_epoch_end(trainer: Any) -> None:
        info = activity.info()
        late = tracking.status_line(info.workflow_run_id or "") if tracking else None
        reporter.report(
            names.TRAINING_PROGRESS_SIGNAL,
            TrainingProgress(
                # Ultralytics calls this once more after final validation, one past the end.
                epoch=min(int(trainer.epoch) + 1, int(trainer.epochs)),
                epochs=int(trainer.epochs),
                metrics=_epoch_metrics(trainer),
                attempt=info.attempt,
                tracking=late,
            ),
        )

    return {"on_fit_epoch_end": on_fit_epoch_end}
