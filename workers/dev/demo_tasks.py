"""The demo of a task other than detect: ``python -m workers.dev --demo --task segment``.

The same story as ``make demo`` up to what those tasks support: a synthetic dataset of the task
is uploaded (verified), v1 is trained from the task's architecture and promoted above the
floor, more verified images arrive, and v2 is trained, evaluated against v1 on the same held-out
test split with the task's metric and its bootstrap interval, exported with ONNX parity and
published. Batch prediction (pre-annotation) and the controller step are detect's: they are
not part of this story.

``SENTINEL_DEMO_IMAGES`` (default 48) and ``SENTINEL_DEMO_EPOCHS`` (default 30) size it.
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities.contracts.dataset import AssembleRequest
from activities.contracts.retrain import EvaluationOptions, RetrainRequest, RetrainResult
from activities.contracts.tasks import Task, metric_label
from activities.contracts.training import Hyperparameters
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev.synthetic.tasks import upload_task
from workflows.client.api import SentinelClient
from workflows.client.follow import follow_run

console = Console()


def _request(task: Task, epochs: int) -> RetrainRequest:
    model = f"demo-{task}"
    return RetrainRequest(
        model_name=model,
        dataset=AssembleRequest(dataset=model, prefix=f"datasets/{model}", task=task),
        hyperparameters=Hyperparameters(
            epochs=epochs,
            imgsz=96,
            batch=8,
            seed=0,
            workers=0,
            extra={"mosaic": 0.0, "nbs": 8, "warmup_epochs": 1.0},
        ),
        evaluation=EvaluationOptions(bootstrap_resamples=200),
    )


def _summary(task: Task, results: list[tuple[RetrainResult, float]]) -> None:
    name = metric_label(task, None)
    table = Table(title=f"Sentinel Training demo: {task}")
    for column in ("version", "epochs", "test images", name, "champion", "decision", "wall s"):
        table.add_column(column)
    for result, seconds in results:
        champion = (
            f"v{result.champion_version} {result.champion_score:.3f}"
            if result.champion_version is not None and result.champion_score is not None
            else "-"
        )
        table.add_row(
            f"v{result.version}",
            str(result.epochs_done),
            str(result.dataset_counts.get("test", 0)),
            f"{result.candidate_score or 0.0:.3f}",
            champion,
            "promoted" if result.promoted else "kept",
            f"{seconds:.0f}",
        )
    console.print(table)
    for result, _ in results:
        console.print(f"[bold]v{result.version}[/]: {result.reason}")
    console.print("Artifacts of the last version (models bucket):")
    for key in results[-1][0].artifacts.values():
        console.print(f"  {key}")


async def run_task_demo(
    client: Client, settings: Settings, store: ObjectStore, task: Task, ui_url: str | None = None
) -> int:
    """v1 then v2 of ``demo-{task}``; returns the process exit code."""
    sentinel = SentinelClient(client, settings)
    first = int(os.environ.get("SENTINEL_DEMO_IMAGES", "48"))
    epochs = int(os.environ.get("SENTINEL_DEMO_EPOCHS", "30"))
    prefix = f"datasets/demo-{task}"
    upload_task(store, settings.data_bucket, prefix, task=task, count=first, size=96)
    console.print(
        f"1. uploaded {first} verified {task} images to s3://{settings.data_bucket}/{prefix}/"
    )
    results: list[tuple[RetrainResult, float]] = []
    for step, (count, start, run_epochs) in enumerate(
        [(0, 0, epochs // 2), (first // 2, first, epochs)], start=2
    ):
        if count:
            upload_task(
                store, settings.data_bucket, prefix, task=task, count=count, start=start, size=96
            )
            console.print(f"   {count} more verified images arrived")
        version = "v1 (no champion)" if step == 2 else "v2, gated against v1"
        console.print(f"{step}. retraining demo-{task} {version}: {run_epochs} epochs")
        began = time.monotonic()
        await sentinel.start_retrain(_request(task, run_epochs), attach=True)
        if (code := await follow_run(sentinel, f"demo-{task}")) != 0:
            return code
        results.append((await sentinel.result(f"demo-{task}"), time.monotonic() - began))
    _summary(task, results)
    if ui_url:
        console.print(f"Inspect the runs in the Temporal UI: {ui_url}/namespaces/default/workflows")
    return 0
