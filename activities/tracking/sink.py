"""The one background sender of a worker process: a bounded queue drained by a daemon thread.

Activities only ever *enqueue* (a few microseconds, never blocking: a full queue drops the
record and counts it). The thread sends each record in order and retries one that fails with
growing pauses; a record that still fails is *lost*: logged as a warning naming the run and
what was lost, and counted. Counts per run (waiting, sent, lost, dropped) are what the
activities report in their heartbeat details, their progress and their logs.

Records are closures over the :class:`~activities.tracking.session.Session` (which imports
MLflow, lazily, in this thread), so nothing slow ever runs in an activity's thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from activities.infra import metrics

if TYPE_CHECKING:
    from activities.tracking.session import Session

log = logging.getLogger(__name__)

CAPACITY = 10_000
"""Records waiting at most (a 100-epoch run makes ~110); beyond it records are dropped."""

RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0)
"""Pauses before the 2nd, 3rd, ... try of a failed record: ~50 s of a server being away."""

Operation = Callable[["Session"], None]


@dataclass(frozen=True)
class Record:
    """One thing to send for one run (``run_key``: the Temporal workflow run id)."""

    run_key: str
    what: str
    operation: Operation


@dataclass
class RunStatus:
    """What became of one run's records in this process."""

    waiting: int = 0
    sent: int = 0
    lost: int = 0
    dropped: int = 0

    def line(self) -> str | None:
        """``None`` while all is well, else one line for logs and progress."""
        if not (self.waiting or self.lost or self.dropped):
            return None
        parts = [f"{self.waiting} waiting"] if self.waiting else []
        parts += [f"{self.lost} lost after retries"] if self.lost else []
        parts += [f"{self.dropped} dropped (queue full)"] if self.dropped else []
        return f"MLflow: {', '.join(parts)}; {self.sent} sent"


class Sink:
    """Bounded queue + one daemon thread sending records through a lazily made session."""

    def __init__(
        self,
        make_session: Callable[[], Session],
        *,
        capacity: int = CAPACITY,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self._make_session = make_session
        self._session: Session | None = None
        self._queue: queue.Queue[Record | None] = queue.Queue(maxsize=capacity)
        self._retry_delays = tuple(retry_delays)
        self._lock = threading.Lock()
        self._status: dict[str, RunStatus] = {}
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._closing = threading.Event()
        self.cpu_seconds = 0.0
        """CPU time the thread spent sending (what tracking takes from a training's CPUs)."""
        self._thread = threading.Thread(target=self._drain, name="mlflow-sink", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    # ------------------------------------------------------------------ activity side
    def submit(self, record: Record) -> bool:
        """Enqueue without blocking; False (and counted as dropped) when the queue is full."""
        with self._lock:
            status = self._status.setdefault(record.run_key, RunStatus())
            if self._closing.is_set():
                status.dropped += 1
                metrics.TRACKING_RECORDS.labels("dropped").inc()
                return False
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                status.dropped += 1
                metrics.TRACKING_RECORDS.labels("dropped").inc()
                log.warning("MLflow queue full: dropped %s of run %s", record.what, record.run_key)
                return False
            status.waiting += 1
            self._busy += 1
        metrics.TRACKING_BACKLOG.inc()
        return True

    def status(self, run_key: str) -> RunStatus:
        """A copy of the counts of ``run_key``."""
        with self._lock:
            found = self._status.get(run_key, RunStatus())
            return RunStatus(found.waiting, found.sent, found.lost, found.dropped)

    def flush(self, timeout: float) -> bool:
        """Wait until every record is sent or lost; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float) -> bool:
        """Flush for at most ``timeout`` s, then stop; records still waiting are logged."""
        flushed = self.flush(timeout)
        self._closing.set()
        if not flushed:
            with self._lock:
                waiting = {k: s.waiting for k, s in self._status.items() if s.waiting}
            log.warning("MLflow: stopping with records not sent (per run): %s", waiting)
        with contextlib.suppress(queue.Full):  # the thread stops once the queue drains
            self._queue.put_nowait(None)
        return flushed

    # ------------------------------------------------------------------ thread side
    def _drain(self) -> None:
        try:  # MLflow's import (seconds of CPU) at worker start-up, not during a training
            self._session = self._make_session()
        except Exception as exc:  # retried with the first record
            log.info("MLflow client not ready yet: %s", _short(exc))
        while True:
            record = self._queue.get()
            if record is None:
                return
            started = time.thread_time()
            sent = self._send(record)
            self.cpu_seconds += time.thread_time() - started
            with self._idle:
                status = self._status.setdefault(record.run_key, RunStatus())
                status.waiting -= 1
                if sent:
                    status.sent += 1
                else:
                    status.lost += 1
                self._busy -= 1
                self._idle.notify_all()
            metrics.TRACKING_BACKLOG.dec()
            metrics.TRACKING_RECORDS.labels("sent" if sent else "lost").inc()

    def _send(self, record: Record) -> bool:
        """Run ``record`` with retries; False when every try failed (logged)."""
        error: Exception | None = None
        for attempt, delay in enumerate((0.0, *self._retry_delays)):
            if delay and self._closing.wait(delay):
                break  # closing: no more pauses
            try:
                if self._session is None:
                    self._session = self._make_session()
                record.operation(self._session)
                return True
            except Exception as exc:  # anything MLflow or the network raises
                error = exc
                log.info("MLflow: %s of run %s failed (try %d): %s", record.what,
                         record.run_key, attempt + 1, _short(exc))  # fmt: skip
        log.warning(
            "MLflow: gave up on %s of run %s after retries: %s",
            record.what, record.run_key, _short(error),
        )  # fmt: skip
        return False


def _short(exc: Exception | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc else "closing"
    return text.splitlines()[0][:300] if text else ""
