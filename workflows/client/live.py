"""Live training progress from the training activity's heartbeat, and the runs list.

A retrain's history holds its stages, not its epochs: the training activity signals its
workflow only now and then (``activities/training/progress.py``), while every heartbeat
carries a summary (epoch, metrics, pace, attempt, resume). Temporal keeps the latest
heartbeat details of a pending activity, and ``describe`` returns them; this module merges
them into the ``progress`` query's answer so that the CLI, backend code and the ETA see every
epoch without any history event. ``list_runs`` reads the memo each run keeps (stage, epochs,
version; updated once per stage) and, for runs in training, their heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from activities.contracts import names
from activities.contracts.retrain import Progress

_ENDED_STAGE = {
    WorkflowExecutionStatus.COMPLETED: "succeeded",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
}


@dataclass(frozen=True)
class RunSummary:
    """One retrain run as listed by :meth:`SentinelClient.list_runs`.

    ``stage``, ``epoch``, ``epochs`` and ``version`` come from the run's memo (runs started
    before it existed show the stage their status implies, and no epoch or version); a run in
    training shows the epoch of its latest heartbeat.
    """

    workflow_id: str
    run_id: str
    status: str
    started_at: datetime | None
    closed_at: datetime | None
    stage: str = ""
    epoch: int | None = None
    epochs: int | None = None
    version: int | None = None


async def training_heartbeat(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> dict[str, Any] | None:
    """The summary in the pending ``train`` activity's latest heartbeat (None: none yet)."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != names.TRAIN or not pending.heartbeat_details.payloads:
            continue
        values = await client.data_converter.decode(pending.heartbeat_details.payloads)
        details = values[0] if values else None
        summary = details.get("summary") if isinstance(details, dict) else None
        return summary if isinstance(summary, dict) else None
    return None


def merge_heartbeat(progress: Progress, summary: dict[str, Any]) -> Progress:
    """``progress`` with the epoch, metrics, attempt and ETA of a training heartbeat summary.

    Only while the run is training, and only when the heartbeat is not older than what the
    workflow already knows (same attempt, fewer epochs).
    """
    epoch, epochs, attempt = summary.get("epoch"), summary.get("epochs"), summary.get("attempt")
    if progress.stage != "training" or not isinstance(epoch, int) or not isinstance(epochs, int):
        return progress
    attempt = attempt if isinstance(attempt, int) else progress.attempt
    if attempt < progress.attempt or (attempt == progress.attempt and epoch < progress.epoch):
        return progress
    raw = summary.get("metrics")
    metrics = {
        str(k): float(v) for k, v in (raw or {}).items() if isinstance(v, int | float)
    } or dict(progress.metrics)
    pace = summary.get("seconds_per_epoch")
    eta = pace * max(0, epochs - epoch) if isinstance(pace, int | float) and pace > 0 else None
    resumed = summary.get("resumed_from_epoch")
    return progress.model_copy(
        update={
            "epoch": epoch,
            "epochs": epochs,
            "metrics": metrics,
            "eta_seconds": eta if eta is not None else progress.eta_seconds,
            "attempt": attempt,
            "resumed_from_epoch": resumed if isinstance(resumed, int) else None,
            "live": True,
        }
    )


async def live_progress(client: Client, handle: WorkflowHandle[Any, Any]) -> Progress:
    """The ``progress`` query, with the training heartbeat merged in while training."""
    progress: Progress = await handle.query(names.PROGRESS_QUERY, result_type=Progress)
    if progress.stage != "training":
        return progress
    summary = await training_heartbeat(client, handle)
    return merge_heartbeat(progress, summary) if summary else progress


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def list_runs(client: Client, limit: int = 20) -> list[RunSummary]:
    """Recent retrains, newest first, with stage, epoch and version (no worker needed)."""
    runs: list[RunSummary] = []
    query = f"WorkflowType = '{names.RETRAIN_WORKFLOW}'"
    async for execution in client.list_workflows(query, limit=limit):
        memo = await execution.memo()
        status = execution.status
        stage = str(memo.get("stage") or "")
        running = status == WorkflowExecutionStatus.RUNNING
        if not running and stage not in ("succeeded", "failed", "canceled") and status:
            stage = _ENDED_STAGE.get(status, stage)  # terminated, timed out, or no memo
        stage = stage or ("running" if running else "")
        epoch = _int(memo.get("epoch"))
        if running and stage == "training":
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            summary = await training_heartbeat(client, handle)
            epoch = _int((summary or {}).get("epoch")) or epoch
        runs.append(
            RunSummary(
                workflow_id=execution.id,
                run_id=execution.run_id,
                status=status.name if status else "UNKNOWN",
                started_at=execution.start_time,
                closed_at=execution.close_time,
                stage=stage,
                epoch=epoch,
                epochs=_int(memo.get("epochs")),
                version=_int(memo.get("version")),
            )
        )
    return runs
