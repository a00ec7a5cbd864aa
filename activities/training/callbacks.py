"""One small hook per Ultralytics event; together they make a training run durable.

- ``on_pretrain_routine_end``: setup done (labels cached, model built); heartbeat. Setup
  itself has no callbacks: :class:`SetupKeepalive` covers it, bounded in time.
- ``on_train_epoch_start``: marks an epoch in progress.
- ``on_train_batch_end`` / ``on_val_batch_end``: cancel and worker-shutdown checks at every
  batch boundary, heartbeat at most every ``min_interval`` seconds (real progress only).
- ``on_model_save``: stage an atomic copy of ``last.pt`` for background upload.
- ``on_fit_epoch_end``: epoch bookkeeping, heartbeat, stop-early poll. Ultralytics also calls
  it once more after the final validation of ``best.pt``; that call records the final metrics.

Cancel and shutdown raise :class:`Interrupted` out of the training loop instead of setting
``trainer.stop``: ``stop`` would make Ultralytics validate and save a half epoch as a full one
and strip the optimizer from ``last.pt``. Stop-early sets ``trainer.stop`` at an epoch end,
*after* that epoch's checkpoint was staged, which gives the normal graceful ending (final
validation of ``best.pt``) while every uploaded checkpoint stays resumable.

Over ~300 lines on purpose: every Ultralytics hook of a durable run side by side, so the
order in which they fire can be read in one file.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from activities.infra import timings
from activities.infra.errors import BadInputError
from activities.training.checkpoints import CheckpointRef, CheckpointUploader
from activities.training.control import ControlPoller

log = logging.getLogger(__name__)

HEARTBEAT_MIN_INTERVAL = 1.0

EpochListener = Callable[[int, int, dict[str, float], float], None]
"""Told ``(epochs done, epochs, metrics, seconds per epoch)`` after each training epoch."""


def epoch_metrics(trainer: Any) -> dict[str, float]:
    """The epoch's training losses and validation metrics, plus ``map50``/``map50_95``."""
    raw: dict[str, Any] = {}
    try:
        raw.update(trainer.label_loss_items(trainer.tloss, prefix="train"))
    except Exception:  # no loss yet (or an Ultralytics without it): metrics alone
        log.debug("no training losses on this trainer", exc_info=True)
    raw.update(getattr(trainer, "metrics", None) or {})
    metrics = {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}
    for name, key in (("map50", "metrics/mAP50(B)"), ("map50_95", "metrics/mAP50-95(B)")):
        if key in metrics:
            metrics[name] = metrics[key]
    return metrics


class Interrupted(Exception):
    """Raised from a callback to leave the training loop at a batch boundary."""

    def __init__(self, reason: Literal["cancelled", "worker_shutdown"]) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Signals:
    """Where cancel and worker shutdown are read (the activity context in production)."""

    is_cancelled: Callable[[], bool]
    is_worker_shutdown: Callable[[], bool]


class Heartbeat:
    """Thread-safe heartbeat details: the resume state, always, plus the latest progress.

    Every heartbeat carries the checkpoint list and batch so that a retry sees them even when
    this attempt dies before uploading a checkpoint of its own.
    """

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        checkpoints: list[CheckpointRef],
        batch: int,
        attempt: int = 1,
        min_interval: float = HEARTBEAT_MIN_INTERVAL,
    ) -> None:
        self._send = send
        self.attempt = attempt
        self._lock = threading.Lock()
        self._checkpoints = list(checkpoints)
        self.batch = batch
        self.min_interval = min_interval
        self._phase = "start"
        self._progress: dict[str, Any] = {}
        self._summary: dict[str, Any] = {"attempt": attempt}
        self._last = float("-inf")

    def set_checkpoints(self, refs: list[CheckpointRef]) -> None:
        with self._lock:
            self._checkpoints = list(refs)

    def set_batch(self, batch: int) -> None:
        with self._lock:
            self.batch = batch

    def update_summary(self, **fields: Any) -> None:
        """The run's story so far (epoch, metrics, pace, resume), kept in every heartbeat:
        clients read it from the pending activity (``describe``) for live progress."""
        with self._lock:
            self._summary.update(fields)

    def details(self) -> dict[str, Any]:
        with self._lock:
            newest = self._checkpoints[0] if self._checkpoints else None
            return {
                "attempt": self.attempt,
                "phase": self._phase,
                "epoch": newest.epoch if newest else None,
                "key": newest.key if newest else None,
                "sha256": newest.sha256 if newest else None,
                "batch": self.batch,
                "checkpoints": [ref.to_dict() for ref in self._checkpoints],
                "progress": dict(self._progress),
                "summary": dict(self._summary),
            }

    def beat(self, phase: str | None = None, *, force: bool = False, **progress: Any) -> None:
        """Record progress and send it (at most every ``min_interval`` s unless ``force``)."""
        with self._lock:
            if phase is not None:
                self._phase = phase
            if progress:
                self._progress = progress
            now = time.monotonic()
            if not force and now - self._last < self.min_interval:
                return
            self._last = now
        try:
            with timings.span("heartbeat"):
                self._send(self.details())
        except Exception as exc:  # a busy event loop must not kill the training
            log.warning("heartbeat not sent: %s: %s", type(exc).__name__, exc)


class SetupKeepalive:
    """Heartbeats while Ultralytics sets up (label caching, dataloaders), which has no callbacks.

    Bounded: after ``max_seconds`` it stops, so a setup that hangs is still detected by the
    heartbeat timeout. Stopped by the ``on_pretrain_routine_end`` hook or when training ends.
    """

    def __init__(self, heartbeat: Heartbeat, *, interval: float, max_seconds: float) -> None:
        self.heartbeat = heartbeat
        self.interval = interval
        self.max_seconds = max_seconds
        self._done = threading.Event()
        context = contextvars.copy_context()  # the thread heartbeats the caller's activity
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="setup-keepalive", daemon=True
        )

    def start(self) -> SetupKeepalive:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._done.wait(self.interval):
            if time.monotonic() > deadline:
                log.warning("training setup still running after %.0fs", self.max_seconds)
                return
            self.heartbeat.beat("setup", force=True)


@dataclass
class RunState:
    """What the hooks learned about the run (read by the activity afterwards)."""

    epochs_requested: int
    start_epoch: int = 0
    epochs_done: int = 0
    stop_requested: bool = False
    final_metrics: dict[str, float] = field(default_factory=dict)
    batch: int = 0
    training_started: bool = False
    started_at: float = 0.0
    """``time.monotonic()`` when this attempt's training loop began (after setup)."""


class TrainingHooks:
    """The callbacks of one attempt; :meth:`install` adds them to a ``YOLO`` model."""

    def __init__(
        self,
        heartbeat: Heartbeat,
        uploader: CheckpointUploader,
        poller: ControlPoller,
        signals: Signals,
        *,
        epochs: int,
        min_batch: int,
        keepalive: SetupKeepalive | None = None,
        on_epoch: EpochListener | None = None,
    ) -> None:
        self.heartbeat = heartbeat
        self.on_epoch = on_epoch
        self.keepalive = keepalive
        self.uploader = uploader
        self.poller = poller
        self.signals = signals
        self.min_batch = min_batch
        self.state = RunState(epochs_requested=epochs)
        self._in_epoch = False
        self._batches = 0

    def install(self, model: Any) -> None:
        for event in (
            "on_pretrain_routine_end",
            "on_train_epoch_start",
            "on_train_batch_end",
            "on_val_batch_end",
            "on_model_save",
            "on_fit_epoch_end",
        ):
            model.add_callback(event, getattr(self, event))

    def _check_interrupt(self) -> None:
        if self.signals.is_cancelled():
            raise Interrupted("cancelled")
        if self.signals.is_worker_shutdown():
            raise Interrupted("worker_shutdown")

    # ------------------------------------------------------------------ events
    def on_pretrain_routine_end(self, trainer: Any) -> None:
        if self.keepalive is not None:
            self.keepalive.stop()
        self.state.start_epoch = trainer.start_epoch
        self.state.epochs_done = trainer.start_epoch
        self.state.batch = trainer.batch_size
        self.state.training_started = True
        self.state.started_at = time.monotonic()
        self.heartbeat.set_batch(trainer.batch_size)
        self.heartbeat.beat("train", force=True, epoch=trainer.start_epoch, epochs=trainer.epochs)
        self._check_interrupt()

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._in_epoch = True
        self._batches = 0
        self._check_interrupt()

    def on_train_batch_end(self, trainer: Any) -> None:
        self._batches += 1
        if trainer.batch_size < self.min_batch:  # Ultralytics' own first-epoch OOM halving
            raise BadInputError(
                f"out of GPU memory: Ultralytics reduced batch to {trainer.batch_size}, below "
                f"min_batch={self.min_batch}"
            )
        self._check_interrupt()
        self.heartbeat.beat(
            "train", epoch=trainer.epoch + 1, epochs=trainer.epochs, batches=self._batches
        )

    def on_val_batch_end(self, validator: Any) -> None:
        self._check_interrupt()
        self.heartbeat.beat("validate", epoch=self.state.epochs_done + 1)

    def on_model_save(self, trainer: Any) -> None:
        # Called right after Ultralytics wrote weights/last.pt for this epoch (with optimizer).
        # The final epoch's checkpoint is never resumable (nothing left to train): not uploaded.
        if trainer.epoch + 1 < trainer.epochs:
            with timings.span("checkpoint_stage"):
                self.uploader.submit(trainer.last, trainer.epoch + 1)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if not self._in_epoch:  # final validation of best.pt after the loop
            self.state.final_metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
            self.heartbeat.beat("final", force=True)
            return
        self._in_epoch = False
        self.state.epochs_done = trainer.epoch + 1
        self.state.batch = trainer.batch_size
        metrics = epoch_metrics(trainer)
        done_here = self.state.epochs_done - self.state.start_epoch
        pace = (time.monotonic() - self.state.started_at) / max(1, done_here)
        self.heartbeat.update_summary(
            epoch=self.state.epochs_done,
            epochs=int(trainer.epochs),
            metrics=metrics,
            seconds_per_epoch=round(pace, 3),
        )
        self.heartbeat.beat(
            "train",
            force=True,
            epoch=self.state.epochs_done,
            epochs=trainer.epochs,
            map50=metrics.get("map50", 0.0),
        )
        if self.on_epoch is not None:
            with timings.span("run_log"):
                self.on_epoch(self.state.epochs_done, int(trainer.epochs), metrics, pace)
        stop = False
        if not trainer.stop and self.state.epochs_done < trainer.epochs:
            with timings.span("control_poll"):
                stop = self.poller.requested()
        if stop:
            log.info("stop early requested: ending after epoch %d", self.state.epochs_done)
            self.state.stop_requested = True
            trainer.stop = True
        self._check_interrupt()
