"""The demo job run by ``make demo`` on the embedded stack.

1. upload a synthetic dataset of verified annotations (coloured shapes);
2. retrain v1 from scratch: no champion, so it is promoted above the floor;
3. add more verified annotations, as labellers would;
4. retrain v2: evaluated against v1 on the same held-out test split, gated, published;
5. print a summary table and where to look in the Temporal UI and the MLflow UI (both runs
   are tracked there when the stack runs its MLflow server).
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities.contracts.dataset import AssembleRequest
from activities.contracts.retrain import EvaluationOptions, RetrainRequest, RetrainResult
from activities.contracts.training import Hyperparameters
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev import synthetic
from workflows.client.api import SentinelClient
from workflows.client.follow import follow_run

MODEL = "demo-shapes"
PREFIX = "datasets/demo-shapes"
console = Console()


def _request(epochs: int) -> RetrainRequest:
    # imgsz 96 with mosaic off and nbs = batch learns these shapes in ~40 epochs on a CPU.
    return RetrainRequest(
        model_name=MODEL,
        dataset=AssembleRequest(dataset=MODEL, prefix=PREFIX),
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


def _summary(
    results: list[RetrainResult], ui_url: str | None, mlflow_url: str | None, experiment: str
) -> None:
    table = Table(title="Sentinel Training demo")
    for column in (
        "version",
        "epochs",
        "test images",
        "mAP50-95",
        "champion",
        "decision",
        "production",
    ):
        table.add_column(column)
    for result in results:
        champion = (
            f"v{result.champion_version} {result.champion_map50_95:.3f}"
            if result.champion_version is not None and result.champion_map50_95 is not None
            else "-"
        )
        table.add_row(
            f"v{result.version}",
            str(result.epochs_done),
            str(result.dataset_counts.get("test", 0)),
            f"{result.candidate_map50_95:.3f}",
            champion,
            "promoted" if result.promoted else "kept",
            f"v{result.production_version}",
        )
    console.print(table)
    for result in results:
        console.print(f"[bold]v{result.version}[/]: {result.reason}")
    last = results[-1]
    console.print("Artifacts of the last version (models bucket):")
    for key in last.artifacts.values():
        console.print(f"  {key}")
    if ui_url:
        console.print(f"Inspect the runs in the Temporal UI: {ui_url}/namespaces/default/workflows")
    if mlflow_url:
        console.print(
            f"Parameters, per-epoch metrics, lineage and the registered versions in the MLflow "
            f"UI: {mlflow_url}/#/models/{MODEL} (experiment {experiment})"
        )


async def run_demo(
    client: Client,
    settings: Settings,
    store: ObjectStore,
    ui_url: str | None = None,
    *,
    mlflow_url: str | None = None,
) -> int:
    """The whole demo; returns the process exit code."""
    sentinel = SentinelClient(client, settings)
    first_batch = int(os.environ.get("SENTINEL_DEMO_IMAGES", "48"))
    epochs = int(os.environ.get("SENTINEL_DEMO_EPOCHS", "40"))
    synthetic.upload(
        store, settings.data_bucket, PREFIX, layout="yolo", count=first_batch, seed=0, verified=True
    )
    console.print(
        f"1. uploaded {first_batch} verified images to s3://{settings.data_bucket}/{PREFIX}/"
    )
    results: list[RetrainResult] = []
    console.print(f"2. retraining {MODEL} v1 ({epochs // 2} epochs, from scratch)")
    await sentinel.start_retrain(_request(epochs // 2), attach=True)
    if (code := await follow_run(sentinel, MODEL)) != 0:
        return code
    results.append(await sentinel.result(MODEL))
    more = first_batch // 2
    synthetic.upload(
        store,
        settings.data_bucket,
        PREFIX,
        layout="yolo",
        count=more,
        seed=0,
        start=first_batch,
        verified=True,
    )
    console.print(f"3. labellers verified {more} more images")
    console.print(f"4. retraining {MODEL} v2 ({epochs} epochs), gated against v1")
    await sentinel.start_retrain(_request(epochs))
    if (code := await follow_run(sentinel, MODEL)) != 0:
        return code
    results.append(await sentinel.result(MODEL))
    _summary(results, ui_url, mlflow_url, f"{settings.mlflow_experiment_prefix}{MODEL}")
    return 0
