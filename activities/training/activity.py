"""The ``train`` activity: Ultralytics YOLO on the GPU queue, durable across worker deaths.

One attempt: validate hyperparameters (before anything slow) -> read the previous attempt's
heartbeat details -> materialize the dataset snapshot (heartbeating its progress) -> pick a
verified checkpoint to resume from, else the base model -> train with the hooks of
:mod:`activities.training.callbacks` -> upload ``best.pt``, ``last.pt`` and ``results.csv`` to
``runs/{workflow_id}/`` -> delete the run's checkpoints and control objects (a completed
training is never resumed) -> :class:`TrainResult`.

How an attempt ends other than by success:

- cancel: the batch-end hook raises at the next batch boundary, pending checkpoint uploads are
  finished, and the activity raises ``CancelledError``;
- worker shutdown (SIGTERM): at the next batch boundary after an optimizer step a mid-epoch
  checkpoint is taken (after an epoch's last batch or during its validation: the epoch's, once
  validated), uploaded and heartbeated, and the attempt fails *retryably*, so another worker
  resumes it there; once the last epoch is trained, the attempt finishes instead;
- CUDA out of memory: the halved batch is heartbeated and the attempt fails retryably (below
  ``min_batch``: a final BadInputError);
- worker death: nothing runs; the next attempt resumes from the newest checkpoint, at most
  ``SENTINEL_CHECKPOINT_INTERVAL_SECONDS`` (plus a batch and an upload) old.

Over ~300 lines on purpose: one attempt's life (base, dataset lease, resume, fit, final
uploads, run log) in order; the pieces it calls live in the sibling modules.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import names
from activities.contracts.bases import BaseRecord
from activities.contracts.training import TrainRequest, TrainResult
from activities.infra import metrics, timings
from activities.infra.errors import SentinelError, translate_errors
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.tracking import Tracking
from activities.training import args as train_args
from activities.training.base_model import prepare_base
from activities.training.callbacks import (
    Heartbeat,
    Interrupted,
    SetupKeepalive,
    Signals,
    TrainingHooks,
)
from activities.training.checkpoints import CheckpointRef, CheckpointUploader, checkpoint_prefix
from activities.training.control import (
    POLL_INTERVAL_SECONDS,
    ControlPoller,
    control_prefix,
    run_prefix,
)
from activities.training.fit import FitPlan, build_result, fit, publish
from activities.training.oom import halved_batch, is_out_of_memory
from activities.training.policy import CheckpointPolicy
from activities.training.resume import (
    PriorState,
    delete_resume_points,
    delete_stale,
    select_checkpoint,
)
from activities.training.runlog import (
    UPLOAD_INTERVAL_SECONDS,
    RunLog,
    delete_stale_logs,
    epoch_line,
    start_line,
)
from activities.training.task_checks import check_before_training
from activities.training.telemetry import EpochTelemetry, track_start

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_SECONDS = 120.0
"""Longest wait for an in-flight checkpoint upload when an attempt ends early."""

SETUP_KEEPALIVE_MAX_SECONDS = 1800.0
"""Longest Ultralytics setup (label caching of a large dataset) kept alive by heartbeats."""

Materialize = Callable[..., Any]


def _default_materialize(*args: Any, **kwargs: Any) -> Any:
    from activities.dataset import materialize_snapshot

    return materialize_snapshot(*args, **kwargs)


def _activity_signals() -> Signals:
    return Signals(activity.is_cancelled, activity.is_worker_shutdown)


class TrainingActivities:
    """The ``train`` activity bound to settings and a store (dependency injection).

    ``materialize`` (default ``activities.dataset.materialize_snapshot``) and
    ``extra_callbacks`` (``{event: fn}`` added after ours) exist for tests; ``tracking``
    records the run in MLflow (off by default).
    """

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        *,
        materialize: Materialize | None = None,
        extra_callbacks: dict[str, Callable[[Any], None]] | None = None,
        control_poll_seconds: float = POLL_INTERVAL_SECONDS,
        log_upload_seconds: float = UPLOAD_INTERVAL_SECONDS,
        tracking: Tracking | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tracking = tracking or Tracking(None)
        self.materialize = materialize or _default_materialize
        self.extra_callbacks = extra_callbacks or {}
        self.control_poll_seconds = control_poll_seconds
        self.log_upload_seconds = log_upload_seconds

    @activity.defn(name=names.TRAIN, no_thread_cancel_exception=True)
    @translate_errors
    def train(self, request: TrainRequest) -> TrainResult:
        """Train (or resume training) ``request.model_name`` on ``request.snapshot``."""
        from activities.infra.yolo_env import bootstrap_offline

        bootstrap_offline()
        attempt = _Attempt(self, request, activity.info())
        try:
            return attempt.run()
        finally:
            attempt.report_tracking()


class _Attempt:
    """State of one activity attempt (kept off the activity class: one training per call)."""

    def __init__(self, owner: TrainingActivities, request: TrainRequest, info: Any) -> None:
        self.owner = owner
        self.store = owner.store
        self.settings = owner.settings
        self.bucket = owner.settings.runs_bucket
        self.request = request
        self.hp = request.hyperparameters
        self.info = info
        self.prefix = run_prefix(info.workflow_id)
        self.signals = _activity_signals()
        self.tracker = owner.tracking.run(
            request.model_name, info.workflow_id, info.workflow_run_id or info.workflow_id
        )

    def run(self) -> TrainResult:
        """The attempt, its log kept beside the checkpoints (``logs/attempt-N.log``)."""
        prior = PriorState.from_details(self.info.heartbeat_details)
        if self.info.attempt == 1 and not prior.had_details:
            # A first attempt: what is under the run prefix is an earlier run's (same id).
            delete_stale(self.store, self.bucket, self.prefix)
            delete_stale_logs(self.store, self.bucket, self.prefix)
        self.log = RunLog(
            self.store, self.bucket, self.prefix, self.info.attempt,
            upload_interval=self.owner.log_upload_seconds,
        ).start()  # fmt: skip
        self.log.write(start_line(self.request, self.info.workflow_id, self.info.attempt))
        ending = "attempt failed"
        try:
            result = self._run(prior)
            ending = (
                f"finished: {result.epochs_done}/{result.epochs_requested} epochs "
                f"({result.stop_reason}), mAP50-95 {result.metrics.map50_95:.4f}, "
                f"best.pt sha256 {result.best_sha256[:12]}"
            )
            return result
        except BaseException as exc:
            ending = f"attempt ended: {type(exc).__name__}: {str(exc)[:300]}"
            raise
        finally:
            with timings.span("run_log_close"):
                self.log.close(ending)

    def _run(self, prior: PriorState) -> TrainResult:
        extra = train_args.validate(self.hp)  # bad input fails before anything slow
        device = train_args.resolve_device(self.hp.device)
        batch = prior.batch or self.hp.batch
        self.heartbeat = Heartbeat(
            activity.heartbeat,
            checkpoints=prior.checkpoints,
            batch=batch,
            attempt=self.info.attempt,
        )
        self.heartbeat.beat("start", force=True)
        workdir = self._workdir()
        # The base is resolved and its bytes verified before the dataset or any training:
        # weights that do not match the digest vouching for them fail the run here.
        self.heartbeat.beat("base", force=True)
        snapshot = self.request.snapshot
        with timings.span("base_model"):
            base = prepare_base(self.request.base, self.store, self.settings, snapshot.task)
        check_before_training(self.store, self.settings, self.request, base)
        with timings.span("materialize"):  # leased: the cache bound never evicts it meanwhile
            leased = self.owner.materialize(
                self.store, self.settings, self.request.snapshot, on_progress=self._dataset_progress
            )
        with leased as dataset:
            with timings.span("resume_select"):
                selection = select_checkpoint(
                    self.store, self.bucket, self.prefix, prior, workdir / "resume",
                    epochs=self.hp.epochs,
                    on_try=lambda r: self.heartbeat.beat("resume", force=True, checkpoint=r.key),
                    keys=keyring(self.settings),
                )  # fmt: skip
            for bad, why in selection.rejected:  # e.g. found by listing, no signed sidecar
                self.log.write(f"checkpoint {bad.key} (epoch {bad.epoch}) ignored: {why}")
            self.heartbeat.set_checkpoints(selection.remaining)
            self._track_start(selection.ref, base.record)
            resumed = selection.ref.epoch if selection.ref else None
            self.heartbeat.update_summary(
                epoch=resumed or 0, epochs=self.hp.epochs, resumed_from_epoch=resumed
            )
            self.log.write(
                f"resuming from {selection.ref.describe()} ({selection.ref.key})"
                if selection.ref else "starting from the base model"
            )  # fmt: skip
            uploader = CheckpointUploader(  # its thread's uploads: bg.checkpoint_upload
                timings.timed_store(self.store, "checkpoint_upload"), self.bucket, self.prefix,
                workdir / "staging", self._uploaded,
                existing=selection.remaining, keys=keyring(self.settings),
            )  # fmt: skip
            plan = FitPlan(
                self.request, extra, dataset.data_yaml, workdir / "train", batch, device,
                base=base, checkpoint=selection.path,
            )  # fmt: skip
            policy = CheckpointPolicy(
                self.settings.checkpoint_interval_seconds,
                start=selection.ref.position if selection.ref else (0, 0),
            )
            with timings.span("fit"):
                hooks = self._fit(plan, uploader, policy)
            with timings.span("checkpoint_wait"):
                uploader.close()  # every checkpoint upload done before the final ones
        return self._finish(plan, hooks, selection.ref, workdir)

    def _finish(
        self, plan: FitPlan, hooks: TrainingHooks, resumed: CheckpointRef | None, workdir: Path
    ) -> TrainResult:
        """Upload the final files and describe the run; the attempt's directory goes."""
        with timings.span("final_upload"):
            uploaded = publish(
                self.store, self.bucket, self.prefix, plan.save_dir,
                before_upload=lambda name: self.heartbeat.beat("upload", force=True, file=name),
            )  # fmt: skip
        result = build_result(
            prefix=self.prefix,
            bucket=self.bucket,
            uploaded=uploaded,
            state=hooks.state,
            epochs=self.hp.epochs,
            resumed=resumed,
            batch=hooks.state.batch or plan.batch,
            device=plan.device,
            attempt=self.info.attempt,
            csv_path=plan.save_dir / "results.csv",
            base=plan.base,
        )
        with timings.span("cleanup"):
            delete_resume_points(
                self.store, self.bucket,
                [checkpoint_prefix(self.prefix), control_prefix(self.prefix)],
            )  # fmt: skip
            shutil.rmtree(workdir.parent, ignore_errors=True)
        return result

    def _fit(
        self, plan: FitPlan, uploader: CheckpointUploader, policy: CheckpointPolicy
    ) -> TrainingHooks:
        """Train with our hooks; an interrupted or out-of-memory attempt ends here, raising."""
        keepalive = SetupKeepalive(
            self.heartbeat,
            interval=max(1.0, self.request.heartbeat_timeout_seconds / 4),
            max_seconds=SETUP_KEEPALIVE_MAX_SECONDS,
        )
        telemetry = EpochTelemetry(self.request.model_name, self.tracker)
        hooks = TrainingHooks(
            self.heartbeat,
            uploader,
            ControlPoller(
                self.store, self.bucket, self.prefix, interval=self.owner.control_poll_seconds
            ),
            self.signals,
            epochs=self.hp.epochs,
            min_batch=self.request.min_batch,
            keepalive=keepalive,
            on_epoch=self._epoch_done,
            policy=policy,
            shutdown_budget=self.settings.graceful_shutdown_seconds / 2,
        )
        try:
            keepalive.start()
            fit(
                plan, hooks, extra_callbacks=self.owner.extra_callbacks,
                observers=telemetry.callbacks(),
            )  # fmt: skip
        except Interrupted as exc:
            self._finish_checkpoints(uploader)
            raise self._interrupted(exc, hooks) from None
        except Exception as exc:
            if not is_out_of_memory(exc):
                uploader.close(timeout=FLUSH_TIMEOUT_SECONDS)
                self._track_failure(exc)
                raise
            raise self._out_of_memory(hooks.current_batch() or plan.batch, uploader) from None
        finally:
            keepalive.stop()
        return hooks

    # ------------------------------------------------------------------ tracking
    def _track_start(self, resumed: CheckpointRef | None, base: BaseRecord) -> None:
        """Operator metrics and the MLflow run's parameters, tags and lineage (enqueued)."""
        if resumed is not None:
            metrics.TRAINING_RESUMES.labels(self.request.model_name).inc()
        track_start(
            self.tracker, self.request, base=base, attempt=self.info.attempt,
            resumed_from_epoch=resumed.epoch if resumed else None, store=self.store,
        )  # fmt: skip

    def _track_failure(self, exc: BaseException) -> None:
        """A final failure (bad input, integrity) ends the MLflow run FAILED; retries do not."""
        final = isinstance(exc, SentinelError) and not exc.retryable
        if final or getattr(exc, "non_retryable", False):
            self.tracker.tags({"sentinel.error": f"{type(exc).__name__}: {exc}"})
            self.tracker.finish("FAILED")

    def report_tracking(self) -> None:
        """What MLflow has not received yet goes to the worker's log (it is still being sent:
        a record that is finally lost is logged again by the sender)."""
        line = self.tracker.status_line()
        if line:
            log.warning("%s (attempt %d): %s", self.info.workflow_id, self.info.attempt, line)

    # ------------------------------------------------------------------ helpers
    def _workdir(self) -> Path:
        """``cache/runs/{workflow_id}/attempt-N``, fresh; older attempts' dirs removed."""
        base = self.settings.cache_dir / "runs" / self.info.workflow_id
        if base.exists():
            for old in base.glob("attempt-*"):
                shutil.rmtree(old, ignore_errors=True)
        workdir = base / f"attempt-{self.info.attempt}"
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir

    def _epoch_done(
        self, epoch: int, epochs: int, metrics: dict[str, float], seconds_per_epoch: float
    ) -> None:
        shown = {k: v for k, v in metrics.items() if k not in ("map50", "map50_95")}
        self.log.write(epoch_line(epoch, epochs, shown, seconds_per_epoch))

    def _dataset_progress(self, stage: str, done: int, total: int) -> None:
        """``materialize_snapshot`` progress: heartbeats it and honours a cancel."""
        if self.signals.is_cancelled():
            raise CancelledError(f"training cancelled while caching the dataset ({stage})")
        self.heartbeat.beat("dataset", stage=stage, done=done, total=total)

    def _uploaded(self, ref: CheckpointRef, refs: list[CheckpointRef]) -> None:
        """From the uploader thread: name the checkpoint only now that it is stored."""
        self.log.write(f"checkpoint of {ref.describe()} stored: {ref.key}")
        self.heartbeat.set_checkpoints(refs)
        self.heartbeat.beat(
            "checkpoint", force=True, uploaded_epoch=ref.epoch, uploaded_samples=ref.samples
        )

    def _finish_checkpoints(self, uploader: CheckpointUploader) -> None:
        """Complete any in-flight upload, then heartbeat the newest checkpoint."""
        if not uploader.flush(FLUSH_TIMEOUT_SECONDS):
            log.warning("checkpoint upload still running after %.0fs", FLUSH_TIMEOUT_SECONDS)
        uploader.close(timeout=0)
        self.heartbeat.beat("interrupted", force=True)

    def _out_of_memory(self, current: int, uploader: CheckpointUploader) -> Exception:
        """Hand the halved batch to the next attempt (on any worker), retryably."""
        if current // 2 >= self.request.min_batch:
            self.heartbeat.set_batch(current // 2)  # the next attempt, on any worker, reads it
        self._finish_checkpoints(uploader)
        smaller = halved_batch(current, self.request.min_batch)  # final below the floor
        return ApplicationError(
            f"out of GPU memory at batch={current}: retrying with batch={smaller}",
            type="OutOfMemory",
        )

    def _interrupted(self, exc: Interrupted, hooks: TrainingHooks) -> Exception:
        done = hooks.state.epochs_done
        if exc.reason == "cancelled":
            log.info("training cancelled after %d epoch(s)", done)
            self.tracker.finish("KILLED")
            return CancelledError("training cancelled at a batch boundary")
        log.info("worker shutting down after %d epoch(s): handing over", done)
        return ApplicationError(
            f"worker shutting down: checkpoint of epoch {done} kept, another worker resumes",
            type="WorkerShutdown",
        )
