"""When a training attempt takes a checkpoint: bounded in time, not in epochs.

``SENTINEL_CHECKPOINT_INTERVAL_SECONDS`` (``interval``) is both the most often a checkpoint is
uploaded and, with one batch, the most training a killed worker loses:

- at an epoch end, a checkpoint is taken only when ``interval`` seconds have passed since the
  last one (short epochs: not every epoch pays for serialisation and upload);
- inside an epoch, at the first batch boundary where the weights hold every gradient (an
  optimizer step) after ``interval`` seconds (long epochs: the loss stays bounded);
- on worker shutdown (SIGTERM), always, at the next such boundary;
- never twice at the same position (nothing trained since: nothing to save).

``interval <= 0`` restores the epoch rhythm: a checkpoint at every epoch end, none inside an
epoch except on shutdown. The trade-off and the measured default: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from activities.training.checkpoints import Position


class CheckpointPolicy:
    """Decides, from the training thread, whether a checkpoint is due (thread-safe)."""

    def __init__(
        self,
        interval: float,
        *,
        start: Position = (0, 0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last_position = start
        self._last_time = clock()
        self.taken_count = 0
        self.skipped_count = 0

    def restart_clock(self) -> None:
        """The training loop starts now (setup time is not training time to lose)."""
        with self._lock:
            self._last_time = self.clock()

    def unchanged(self, position: Position) -> bool:
        with self._lock:
            return position == self._last_position

    def _elapsed(self) -> float:
        return self.clock() - self._last_time

    def epoch_end_due(self, position: Position) -> bool:
        """At an epoch end: every epoch when ``interval <= 0``, else once the interval passed."""
        with self._lock:
            due = position != self._last_position and (
                self.interval <= 0 or self._elapsed() >= self.interval
            )
            if not due:
                self.skipped_count += 1
            return due

    def mid_epoch_due(self, position: Position) -> bool:
        """Inside an epoch: only with a positive interval, once it passed."""
        with self._lock:
            return (
                self.interval > 0
                and position != self._last_position
                and self._elapsed() >= self.interval
            )

    def taken(self, position: Position) -> None:
        """A checkpoint of ``position`` was handed to the uploader."""
        with self._lock:
            self._last_position = position
            self._last_time = self.clock()
            self.taken_count += 1
