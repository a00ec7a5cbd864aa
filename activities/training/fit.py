"""Running Ultralytics for one attempt (fresh or resumed) and publishing its outputs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.exceptions import CancelledError

from activities.contracts.training import StopReason, TrainRequest, TrainResult
from activities.infra.storage import ObjectInfo, ObjectStore
from activities.training import args as train_args
from activities.training import results
from activities.training.base_model import PreparedBase, load_model
from activities.training.callbacks import Interrupted, RunState, TrainingHooks
from activities.training.checkpoints import CheckpointRef
from activities.training.oom import is_out_of_memory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitPlan:
    """Everything one ``model.train`` call needs besides the hooks."""

    request: TrainRequest
    extra: dict[str, Any]
    data_yaml: Path
    save_dir: Path
    batch: int
    device: str
    base: PreparedBase
    checkpoint: Path | None = None


def fit(
    plan: FitPlan,
    hooks: TrainingHooks,
    *,
    extra_callbacks: dict[str, Callable[[Any], None]],
    observers: Sequence[tuple[str, Callable[[Any], None]]] = (),
) -> None:
    """Resume ``plan.checkpoint`` when given, else train from the (verified) base model.

    ``observers`` (telemetry that never raises) run before ``hooks``, so an epoch is recorded
    even when a hook ends the attempt at its end; ``extra_callbacks`` run after them.
    A verified checkpoint that Ultralytics still refuses *before* training starts is logged
    and the run starts over from the base model (no crash loop across retries).
    """

    def install(model: Any) -> None:
        for event, fn in observers:
            model.add_callback(event, fn)
        hooks.install(model)
        for event, fn in extra_callbacks.items():
            model.add_callback(event, fn)

    hp = plan.request.hyperparameters
    if plan.checkpoint is not None:
        try:
            model = load_model(str(plan.checkpoint), task=plan.request.snapshot.task)
            prior_rows = (model.ckpt or {}).get("train_results")
            results.write_prior_results(plan.save_dir / "results.csv", prior_rows)
            install(model)
            model.train(
                **train_args.resume_args(
                    hp,
                    checkpoint=plan.checkpoint,
                    data=plan.data_yaml,
                    save_dir=plan.save_dir,
                    batch=plan.batch,
                    device=plan.device,
                )
            )
            return
        except (Interrupted, CancelledError):
            raise
        except Exception as exc:
            if hooks.state.training_started or is_out_of_memory(exc):
                raise
            log.exception("resuming %s failed before training: starting over", plan.checkpoint)
            shutil.rmtree(plan.save_dir, ignore_errors=True)
    model = load_model(plan.base.source, plan.base.record.spec, plan.request.snapshot.task)
    install(model)
    model.train(
        **train_args.train_args(
            hp,
            plan.extra,
            data=plan.data_yaml,
            save_dir=plan.save_dir,
            batch=plan.batch,
            device=plan.device,
        )
    )


def publish(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    save_dir: Path,
    *,
    before_upload: Callable[[str], None],
) -> dict[str, ObjectInfo]:
    """Upload best.pt (else last.pt), last.pt and results.csv to ``prefix``."""
    weights = save_dir / "weights"
    last = weights / "last.pt"
    best = weights / "best.pt" if (weights / "best.pt").exists() else last
    uploaded: dict[str, ObjectInfo] = {}
    for name, path in (
        ("best.pt", best),
        ("last.pt", last),
        ("results.csv", save_dir / "results.csv"),
    ):
        before_upload(name)
        kind = "text/csv" if name.endswith(".csv") else "application/octet-stream"
        uploaded[name] = store.put_file(bucket, f"{prefix}{name}", path, content_type=kind)
    return uploaded


def build_result(
    *,
    prefix: str,
    bucket: str,
    uploaded: dict[str, ObjectInfo],
    state: RunState,
    epochs: int,
    resumed: CheckpointRef | None,
    batch: int,
    device: str,
    attempt: int,
    csv_path: Path,
    base: PreparedBase,
) -> TrainResult:
    rows = results.read_rows(csv_path)
    stopped = state.epochs_done < epochs
    reason: StopReason = (
        "requested" if state.stop_requested else "patience" if stopped else "completed"
    )
    return TrainResult(
        run_prefix=prefix,
        bucket=bucket,
        best_key=uploaded["best.pt"].key,
        best_sha256=uploaded["best.pt"].sha256 or "",
        last_key=uploaded["last.pt"].key,
        last_sha256=uploaded["last.pt"].sha256 or "",
        results_csv_key=uploaded["results.csv"].key,
        epochs_requested=epochs,
        epochs_done=state.epochs_done,
        resumed_from_epoch=resumed.epoch if resumed else None,
        stopped_early=stopped,
        stop_reason=reason,
        batch=batch,
        device=device,
        attempt=attempt,
        metrics=results.final_metrics(state.final_metrics, rows),
        history=results.history(rows),
        base=base.record,
        base_downloaded=base.downloaded,
    )
