"""What a retrain tells the Temporal UI: its summary, each activity's summary, its current
details and its memo, so that the timeline reads without opening a payload.

Pure functions of the run's request, results and progress (no workflow API, no I/O), used by
:mod:`workflows.retrain` (behind :data:`STORY_PATCH`), the controller and the client.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import patches

with workflow.unsafe.imports_passed_through():
    from activities.contracts.bases import BaseModelSpec
    from activities.contracts.bases import base_text as spec_text
    from activities.contracts.dataset import SPLITS, SnapshotRef
    from activities.contracts.gate import GateDecision
    from activities.contracts.retrain import Progress, RetrainRequest

STORY_PATCH = patches.RETRAIN_UI_STORY
"""``workflow.patched`` id: runs started before summaries and memo existed replay without them."""

MAX_SUMMARY = 200
"""Temporal shows summaries on one line; longer ones are cut."""

MemoValue = str | int | float | bool | None


def _cut(text: str, limit: int = MAX_SUMMARY) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def base_text(base: BaseModelSpec | None) -> str:
    """``yolov8n.yaml``, ``weights:yolo11n.pt``, ``registry:parts@production`` or
    ``s3://bucket/key`` (the digest left out: summaries are for people)."""
    if base is None:
        return "the workers' default base"
    return spec_text(base).split("#sha256=", 1)[0]


def snapshot_text(snapshot: SnapshotRef) -> str:
    """``parts@3fa2c1 (38 train / 5 val / 5 test)``."""
    counts = " / ".join(f"{snapshot.counts.get(split, 0)} {split}" for split in SPLITS)
    return f"{snapshot.dataset}@{snapshot.sha256[:6]} ({counts})"


def retrain_summary(request: RetrainRequest) -> str:
    """The run's own summary (set by whoever starts it)."""
    hp, data = request.hyperparameters, request.dataset
    return _cut(
        f"retrain {request.model_name}: {base_text(request.base)} {hp.epochs} epochs, imgsz "
        f"{hp.imgsz} on {data.prefix} ({data.format})"
    )


def retrain_details(request: RetrainRequest) -> str:
    """The run's static details (markdown): the knobs a reviewer asks about first."""
    hp, gate = request.hyperparameters, request.gate
    approval = "required" if request.approval.required else "not required"
    return (
        f"**model** {request.model_name}  \n"
        f"**base** {base_text(request.base)}  \n"
        f"**data** {request.dataset.prefix} ({request.dataset.format}) as dataset "
        f"{request.dataset.dataset}  \n"
        f"**training** {hp.epochs} epochs, imgsz {hp.imgsz}, batch {hp.batch}, lr0 {hp.lr0}, "
        f"seed {hp.seed}  \n"
        f"**gate** floor {gate.floor}, min improvement {gate.min_improvement}, "
        f"approval {approval}"
    )


def assemble_summary(request: RetrainRequest) -> str:
    data = request.dataset
    return _cut(f"assemble {data.dataset} from {data.prefix} ({data.format})")


def train_summary(request: RetrainRequest, snapshot: SnapshotRef) -> str:
    """``train yolov8n.yaml 100 epochs imgsz 640 on parts@3fa2c1 (38 train / 5 val / 5 test)``."""
    hp = request.hyperparameters
    return _cut(
        f"train {base_text(request.base)} {hp.epochs} epochs imgsz {hp.imgsz} on "
        f"{snapshot_text(snapshot)}"
    )


def stop_early_summary(workflow_id: str) -> str:
    return f"stop early: control object for {workflow_id}"


def evaluate_summary(request: RetrainRequest, snapshot: SnapshotRef) -> str:
    tests = snapshot.counts.get("test", 0)
    return _cut(
        f"evaluate candidate vs production {request.model_name} on {snapshot.dataset}@"
        f"{snapshot.sha256[:6]}, test split of {tests} images"
    )


def export_summary(request: RetrainRequest) -> str:
    return _cut(f"export {request.model_name} .pt + .onnx, parity checked")


def publish_summary(request: RetrainRequest, decision: GateDecision) -> str:
    verdict = "promote" if decision.promote else "keep production"
    return _cut(f"publish {request.model_name} ({verdict}: {decision.reason})")


def notify_summary(outcome: str, version: int | None) -> str:
    return f"notify: {outcome}" + (f", v{version}" if version is not None else "")


def _metrics_text(metrics: dict[str, float]) -> str:
    labels = (("map50", "mAP50"), ("map50_95", "mAP50-95"))
    return ", ".join(f"{label} {metrics[key]:.3f}" for key, label in labels if key in metrics)


def current_details(progress: Progress) -> str:
    """The run's current details (markdown): stage, epoch, metrics, data, decision, version."""
    lines = [f"**stage** {progress.stage}"]
    if progress.epochs:
        epoch = f"**epoch** {progress.epoch}/{progress.epochs}"
        if progress.attempt > 1:
            epoch += f" (attempt {progress.attempt}"
            if progress.resumed_from_epoch:
                epoch += f", resumed from epoch {progress.resumed_from_epoch}"
            epoch += ")"
        lines.append(epoch)
    metrics = {k: v for k, v in progress.metrics.items() if k in ("map50", "map50_95")}
    if metrics:
        lines.append(f"**metrics** {_metrics_text(metrics)}")
    if progress.dataset_counts:
        counts = " · ".join(f"{k} {v}" for k, v in progress.dataset_counts.items())
        lines.append(f"**dataset** {counts}")
    if progress.decision is not None:
        lines.append(f"**gate** {progress.decision.reason}")
    if progress.approval != "not_required":
        lines.append(f"**approval** {progress.approval}")
    if progress.candidate_version is not None:
        lines.append(f"**version** v{progress.candidate_version}")
    if progress.error:
        lines.append(f"**error** {progress.error}")
    return "  \n".join(lines)


def memo(progress: Progress) -> dict[str, MemoValue]:
    """What ``sentinel retrain list`` shows without asking a worker: the stage, epochs done of
    how many, the version (updated at stage changes only, one history event each)."""
    return {
        "stage": progress.stage,
        "epoch": progress.epoch,
        "epochs": progress.epochs,
        "version": progress.candidate_version,
        "promoted": progress.decision.promote if progress.decision else None,
    }
