"""Best-effort progress reports from sync activities to their workflow (as signals).

Sync activities run in worker threads and have no Temporal client of their own; the worker
hands this reporter its client and event loop. A report that cannot be delivered is logged
and dropped: progress is informational and must never slow or fail training.

Signals are sparse on purpose (:class:`SignalPacer`): each one is an event in the run's
history and a marker on its timeline. Live per-epoch progress travels in the training's
heartbeat details instead, which the client reads with ``describe``
(:mod:`workflows.client.live`); the workflow hears of the epoch now and then, so that its
own ``progress`` query, its current details and its ETA stay roughly current.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.contracts import names
from activities.infra import timings
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
            with timings.span("progress_signal"):
                future.result(self.timeout_seconds)
            return True
        except FutureTimeout:
            future.cancel()
            log.warning("progress signal %s timed out", signal_name)
        except Exception as exc:  # the workflow may have ended, or be a test workflow
            log.info("progress signal %s not delivered: %s", signal_name, exc)
        return False


MILESTONES = 10
"""At most one signal per ``1/MILESTONES`` of the epochs (so at most 10 per attempt)."""
MIN_SIGNAL_SECONDS = 60.0
"""And at most one signal per minute, however short the epochs."""


class SignalPacer:
    """Decides which epoch ends are signalled, per run and attempt (thread-safe).

    An epoch end is signalled when it crosses a new milestone (10%, 20%, ... of the epochs)
    and ``min_seconds`` have passed since the attempt started or last signalled.
    """

    def __init__(self, milestones: int = MILESTONES, min_seconds: float = MIN_SIGNAL_SECONDS):
        self.milestones = milestones
        self.min_seconds = min_seconds
        self._lock = threading.Lock()
        self._last: dict[tuple[str, int], tuple[int, float]] = {}

    def due(self, run: str, attempt: int, epoch: int, epochs: int, now: float) -> bool:
        """Whether the end of ``epoch`` (1-based) of ``run``'s ``attempt`` is signalled."""
        milestone = epoch * self.milestones // max(1, epochs)
        with self._lock:
            last_milestone, last_time = self._last.setdefault((run, attempt), (0, now))
            if milestone <= last_milestone or now - last_time < self.min_seconds:
                return False
            self._last[(run, attempt)] = (milestone, now)
            return True


def training_progress_callbacks(
    reporter: ProgressReporter,
    pacer: SignalPacer | None = None,
    tracking: Tracking | None = None,
) -> dict[str, Callable[[Any], None]]:
    """Ultralytics callbacks that tell the workflow about finished epochs, now and then (and
    about MLflow records that are late or lost, when tracking is on)."""
    from activities.contracts.retrain import TrainingProgress
    from activities.training.callbacks import epoch_metrics

    pacer = pacer or SignalPacer()

    def on_train_start(trainer: Any) -> None:
        info = activity.info()  # the attempt's clock starts with its training loop
        pacer.due(info.workflow_id or "", info.attempt, 0, int(trainer.epochs), time.monotonic())

    def on_fit_epoch_end(trainer: Any) -> None:
        info = activity.info()
        # Ultralytics calls this once more after final validation, one past the end.
        epoch = min(int(trainer.epoch) + 1, int(trainer.epochs))
        if not pacer.due(info.workflow_id or "", info.attempt, epoch, int(trainer.epochs),
                         time.monotonic()):  # fmt: skip
            return
        start = int(getattr(trainer, "start_epoch", 0) or 0)
        late = tracking.status_line(info.workflow_run_id or "") if tracking else None
        reporter.report(
            names.TRAINING_PROGRESS_SIGNAL,
            TrainingProgress(
                epoch=epoch,
                epochs=int(trainer.epochs),
                metrics=epoch_metrics(trainer),
                attempt=info.attempt,
                resumed_from_epoch=start or None,
                tracking=late,
            ),
        )

    return {"on_train_start": on_train_start, "on_fit_epoch_end": on_fit_epoch_end}
