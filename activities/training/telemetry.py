"""What a training attempt tells operators (Prometheus) and data scientists (MLflow).

:class:`EpochTelemetry` is a set of Ultralytics callbacks, installed *before* the durability
hooks so that an epoch's numbers are recorded even when a hook then ends the attempt. It never
raises (a failure is logged and forgotten) and never waits: MLflow records are enqueued
(:mod:`activities.tracking`). :func:`track_start` records what the run is about, once per
attempt: parameters, tags and the dataset lineage (read from the manifest in the tracking
thread, not here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from activities.contracts.bases import BaseRecord
from activities.contracts.training import TrainRequest
from activities.infra import metrics
from activities.infra.storage import ObjectStore
from activities.tracking import RunTracker
from activities.tracking.records import (
    hyperparameter_params,
    numeric,
)

log = logging.getLogger(__name__)

Callback = tuple[str, Callable[[Any], None]]


class EpochTelemetry:
    """Per-epoch gauges (epoch, images/s, GPU memory) and MLflow metrics of one attempt."""

    def __init__(self, model: str, tracker: RunTracker) -> None:
        self.model = model
        self.tracker = tracker
        self._epoch_started: float | None = None
        self._in_epoch = False
        self._images_per_second: float | None = None

    def callbacks(self) -> list[Callback]:
        return [
            ("on_pretrain_routine_end", self._guarded(self.on_pretrain_routine_end)),
            ("on_train_epoch_start", self._guarded(self.on_train_epoch_start)),
            ("on_train_epoch_end", self._guarded(self.on_train_epoch_end)),
            ("on_fit_epoch_end", self._guarded(self.on_fit_epoch_end)),
        ]

    def _guarded(self, hook: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(trainer: Any) -> None:
            try:
                hook(trainer)
            except Exception:  # telemetry must never end a training
                log.exception("training telemetry: %s failed", hook.__name__)

        return call

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        metrics.TRAINING_EPOCHS.labels(self.model).set(trainer.epochs)
        metrics.TRAINING_EPOCH.labels(self.model).set(trainer.start_epoch)
        self.tracker.params(
            {"task": trainer.args.task, "train_images": len(trainer.train_loader.dataset)}
        )

    def on_train_epoch_start(self, trainer: Any) -> None:
        self._in_epoch = True
        self._epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer: Any) -> None:
        if self._epoch_started is None:
            return
        seconds = time.monotonic() - self._epoch_started
        if seconds > 0:
            self._images_per_second = len(trainer.train_loader.dataset) / seconds
            metrics.TRAINING_IMAGES_PER_SECOND.labels(self.model).set(self._images_per_second)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        if not self._in_epoch:  # Ultralytics' final validation of best.pt, after the loop:
            return  # an attempt's own best.pt; the published candidate's scores are test/...
        self._in_epoch = False
        epoch = int(trainer.epoch) + 1
        metrics.TRAINING_EPOCH.labels(self.model).set(epoch)
        self._gpu_memory()
        values = {
            **trainer.label_loss_items(trainer.tloss, prefix="train"),
            **(trainer.metrics or {}),
            **(trainer.lr or {}),
        }
        recorded = numeric(values)
        if self._images_per_second is not None:
            recorded["images_per_second"] = self._images_per_second
        self.tracker.epoch(epoch, recorded)

    @staticmethod
    def _gpu_memory() -> None:
        import torch

        if not torch.cuda.is_available():
            return
        for index in range(torch.cuda.device_count()):
            device = str(index)
            for kind, value in (
                ("allocated", torch.cuda.memory_allocated(index)),
                ("reserved", torch.cuda.memory_reserved(index)),
                ("peak_allocated", torch.cuda.max_memory_allocated(index)),
            ):
                metrics.GPU_MEMORY_BYTES.labels(device, kind).set(value)


def track_start(
    tracker: RunTracker,
    request: TrainRequest,
    *,
    base: BaseRecord,
    attempt: int,
    resumed_from_epoch: int | None,
    store: ObjectStore,
) -> None:
    """Parameters, tags and dataset lineage of the run (enqueued; nothing is read here).

    ``base`` is what the attempt resolved and verified (its text form and digest); only a
    first, not resumed, attempt records it: a resumed attempt never loads the base, and an
    alias resolved again could name another version than the first attempt's.
    """
    if not tracker.enabled:
        return
    snapshot = request.snapshot
    params: dict[str, object] = {
        **hyperparameter_params(request.hyperparameters),
        "dataset": snapshot.dataset,
        "dataset.sha256": snapshot.sha256,
        "dataset.classes": len(snapshot.class_names),
        **{f"dataset.{split}": count for split, count in snapshot.counts.items()},
    }
    if resumed_from_epoch is None:
        params["base"] = base.spec
        params["base.sha256"] = base.sha256 or "none (trained from scratch)"
    tracker.params(params)
    tracker.tags(
        {
            "sentinel.attempt": attempt,
            "sentinel.resumed_from_epoch": resumed_from_epoch or 0,
            "sentinel.class_names": ",".join(snapshot.class_names),
        }
    )
    tracker.call("dataset lineage", lambda s, run: _log_lineage(s, run, request, store))


def _log_lineage(session: Any, run: str, request: TrainRequest, store: ObjectStore) -> None:
    """The snapshot and its test split as MLflow dataset inputs (manifest read and verified)."""
    from activities.dataset.manifest import load_manifest, split_digest

    snapshot = request.snapshot
    manifest = load_manifest(store, snapshot)
    test_digest = split_digest(manifest, "test")
    source = f"s3://{snapshot.bucket}/{snapshot.key}"
    common = {"source": f"s3://{manifest.bucket}/{manifest.prefix}", "format": manifest.format}
    session.log_dataset(
        run, name=snapshot.dataset, digest=snapshot.sha256, source_uri=source, context="training",
        profile={**common, "sha256": snapshot.sha256, "counts": manifest.counts,
                 "classes": manifest.class_names},
    )  # fmt: skip
    session.log_dataset(
        run, name=f"{snapshot.dataset}/test", digest=test_digest, source_uri=source,
        context="test",
        profile={**common, "sha256": test_digest, "images": manifest.counts.get("test", 0),
                 "test_prefix": manifest.test_prefix},
    )  # fmt: skip
    session.log(
        run,
        params={"dataset.source": common["source"], "dataset.test_sha256": test_digest},
        timestamp_ms=int(time.time() * 1000),
    )
