"""Human output for the CLI: live progress bar, progress and result tables."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError, TerminatedError
from temporalio.service import RPCError

from activities.contracts.retrain import Progress as RunProgress
from activities.contracts.retrain import RetrainResult
from activities.contracts.tasks import metric_label
from workflows.client.api import SentinelClient

console = Console()
ResultT = TypeVar("ResultT")
ENDED = {  # how a run ended -> the CLI's exit code
    WorkflowExecutionStatus.COMPLETED: 0,
    WorkflowExecutionStatus.FAILED: 1,
    WorkflowExecutionStatus.TIMED_OUT: 1,
    WorkflowExecutionStatus.CANCELED: 3,
    WorkflowExecutionStatus.TERMINATED: 3,
}


async def report_end(
    result: Awaitable[ResultT],
    status: WorkflowExecutionStatus | None,
    show: Callable[[ResultT], None],
) -> int:
    """Show how a followed run ended (its result, or why it has none); the CLI exit code."""
    try:
        show(await result)
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, CancelledError | TerminatedError):
            console.print(f"[yellow]run {status.name.lower() if status else 'ended'}[/]")
        else:
            console.print(f"[red]failed:[/] {getattr(exc.cause, 'message', exc.cause)}")
    return ENDED.get(status, 1) if status else 1


def _metrics_text(metrics: dict[str, float]) -> str:
    keys = ("map50", "map50_95")
    shown = [f"{k}={metrics[k]:.3f}" for k in keys if k in metrics]
    return " ".join(shown)


def print_progress(progress: RunProgress) -> None:
    """One table with everything the ``progress`` query returned."""
    table = Table(show_header=False, title=f"retrain of {progress.model_name}")
    table.add_row("stage", progress.stage)
    attempt = f" (attempt {progress.attempt})" if progress.attempt > 1 else ""
    resumed = progress.resumed_from_epoch
    attempt += f", resumed from epoch {resumed}" if attempt and resumed else ""
    table.add_row("epoch", f"{progress.epoch}/{progress.epochs}{attempt}")
    table.add_row("metrics", _metrics_text(progress.metrics) or "-")
    table.add_row("dataset", ", ".join(f"{k} {v}" for k, v in progress.dataset_counts.items()))
    table.add_row("elapsed", f"{progress.elapsed_seconds:.0f}s")
    if progress.eta_seconds is not None:
        table.add_row("time left", f"~{progress.eta_seconds:.0f}s")
    if progress.decision is not None:
        table.add_row("gate", progress.decision.reason)
    table.add_row("approval", progress.approval)
    if progress.approval == "pending" and progress.approval_requested_at is not None:
        table.add_row("waiting since", progress.approval_requested_at.isoformat(timespec="seconds"))
    if progress.tracking:
        table.add_row("tracking", progress.tracking)
    if progress.candidate_version is not None:
        table.add_row("version", f"v{progress.candidate_version}")
    if progress.error:
        table.add_row("error", progress.error)
    console.print(table)


def print_result(result: RetrainResult) -> None:
    """The outcome of a finished retrain."""
    table = Table(show_header=False, title=f"{result.model_name} v{result.version}")
    table.add_row("promoted", "yes" if result.promoted else "no")
    table.add_row("reason", result.reason)
    table.add_row(
        "production", f"v{result.production_version}" if result.production_version else "-"
    )
    if result.task != "detect" and result.candidate_score is not None:  # the task's metric
        name = metric_label(result.task, result.metric)
        table.add_row("task", result.task)
        table.add_row(f"candidate {name}", f"{result.candidate_score:.4f}")
        if result.champion_score is not None:
            table.add_row(
                f"champion v{result.champion_version} {name}", f"{result.champion_score:.4f}"
            )
    table.add_row("candidate mAP50-95", f"{result.candidate_map50_95:.4f}")
    if result.champion_map50_95 is not None:
        table.add_row(
            f"champion v{result.champion_version} mAP50-95", f"{result.champion_map50_95:.4f}"
        )
    table.add_row(
        "epochs", f"{result.epochs_done}" + (" (stopped early)" if result.stopped_early else "")
    )
    for name, key in result.artifacts.items():
        table.add_row(name, key)
    console.print(table)


async def follow_run(sentinel: SentinelClient, model_name: str, poll_seconds: float = 1.0) -> int:
    """Live progress until the run ends; returns the CLI exit code of its outcome."""
    handle = sentinel.handle(model_name)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("queued", total=None, metrics="")
        while True:
            status = (await handle.describe()).status
            if status in ENDED:
                break
            try:  # the query, with the training's heartbeat merged in (every epoch shows)
                progress = await sentinel.progress(model_name)
            except RPCError:
                await asyncio.sleep(poll_seconds)  # no worker picked it up yet
                continue
            bar.update(
                task,
                description=progress.stage,
                total=progress.epochs or None,
                completed=progress.epoch,
                metrics=_metrics_text(progress.metrics),
            )
            await asyncio.sleep(poll_seconds)
    return await report_end(handle.result(), status, print_result)
