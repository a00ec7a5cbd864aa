"""The demo job run by ``make demo`` on the embedded stack: the whole loop.

1. upload a synthetic dataset of verified annotations (coloured shapes);
2. retrain v1 from scratch: no champion, so it is promoted above the floor;
3. new images arrive, unverified; v1 (production) pre-annotates them with a PredictWorkflow
   (COCO, YOLO, Label Studio tasks ranked for the labellers);
4. people verify them (the synthetic truth stands in): true labels, ``verified.jsonl``;
5. the controller (a Temporal Schedule running RetrainCheckWorkflow) counts the new verified
   images, reaches its threshold and starts the v2 retrain: evaluated against v1 on the same
   held-out test split, gated, published;
6. write v2's report with its pictures to a folder (``sentinel models report``, verified) and
   print a summary table and where to look in the Temporal UI and the MLflow UI (both runs
   are tracked there when the stack runs its MLflow server).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from activities.contracts.controller import ControllerConfig
from activities.contracts.dataset import AssembleRequest
from activities.contracts.predict import PredictResult
from activities.contracts.retrain import EvaluationOptions, RetrainRequest, RetrainResult
from activities.contracts.training import Hyperparameters
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev import preannotate, synthetic
from workflows.client.api import SentinelClient
from workflows.client.cli_predict import follow_prediction
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
    results: list[RetrainResult],
    ui_url: str | None,
    predicted: PredictResult,
    agreed: preannotate.Agreement,
    report: Path | None = None,
    mlflow_url: str | None = None,
    experiment: str = "",
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
    summary = predicted.summary
    console.print(
        f"[bold]pre-annotation[/] by v{predicted.version}: {summary.images} new images, "
        f"{summary.predictions} boxes, {summary.images_per_second:.1f} images/s; {agreed.text}"
    )
    console.print(f"  manifest: s3://{predicted.out_bucket}/{predicted.manifest_key}")
    last = results[-1]
    console.print("Artifacts of the last version (models bucket):")
    for key in last.artifacts.values():
        console.print(f"  {key}")
    if report is not None:
        console.print(
            f"Report of v{last.version} with its pictures beside it (open it as markdown): "
            f"{report}",
            soft_wrap=True,
        )
    if ui_url:
        console.print(f"Inspect the runs in the Temporal UI: {ui_url}/namespaces/default/workflows")
    if mlflow_url:
        console.print(
            f"Parameters, per-epoch metrics, lineage and the registered versions in the MLflow "
            f"UI: {mlflow_url}/#/models/{MODEL} (experiment {experiment})"
        )


async def _preannotate(
    sentinel: SentinelClient, settings: Settings, store: ObjectStore, *, count: int, start: int
) -> tuple[PredictResult, preannotate.Agreement] | None:
    """Steps 3 and 4: new images, pre-annotated by production, then verified."""
    bucket = settings.data_bucket
    images = preannotate.upload_incoming(store, bucket, count=count, start=start)
    console.print(
        f"3. {count} new images arrived unverified in s3://{bucket}/{preannotate.INCOMING}/"
    )
    out = f"predictions/{MODEL}/incoming-{start}"
    console.print(f"   pre-annotating them with production {MODEL} (PredictWorkflow)")
    workflow_id = await sentinel.start_prediction(preannotate.predict_request(MODEL, out))
    if await follow_prediction(sentinel, workflow_id) != 0:
        return None
    predicted = await sentinel.prediction_result(workflow_id)
    agreed = preannotate.agreement(store, bucket, out, images)
    console.print(f"   {agreed.text}")
    console.print(
        f"   Label Studio tasks, most useful first: s3://{bucket}/{out}/labelstudio/tasks.json"
    )
    preannotate.verify(store, bucket, PREFIX, count=count, start=start)
    console.print(f"4. labellers corrected and verified the {count} images (synthetic truth)")
    return predicted, agreed


async def _controller_retrain(sentinel: SentinelClient, epochs: int, threshold: int) -> int:
    """Step 5: the check schedule counts the new verified images and starts the retrain."""
    config = ControllerConfig(request=_request(epochs), threshold=threshold)
    before = (await sentinel.handle(MODEL).describe()).run_id
    schedule_id = await sentinel.apply_controller(config, timedelta(hours=1))
    await sentinel.trigger_controller(MODEL)
    console.print(
        f"5. controller schedule {schedule_id} (threshold {threshold}) triggered: it starts "
        f"{MODEL} v2 ({epochs} epochs), gated against v1"
    )
    try:
        await preannotate.wait_for_new_run(sentinel, MODEL, before or "")
        return await follow_run(sentinel, MODEL)
    finally:
        await sentinel.pause_controller(MODEL, note="demo finished")


async def run_demo(
    client: Client,
    settings: Settings,
    store: ObjectStore,
    ui_url: str | None = None,
    report_dir: Path | None = None,
    *,
    mlflow_url: str | None = None,
) -> int:
    """The whole demo; returns the process exit code.

    ``report_dir``: where v2's report and pictures are written (``sentinel models report``).
    """
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
    loop = await _preannotate(sentinel, settings, store, count=more, start=first_batch)
    if loop is None:
        return 1
    if (code := await _controller_retrain(sentinel, epochs, threshold=more)) != 0:
        return code
    results.append(await sentinel.result(MODEL))
    report = None
    if report_dir is not None:
        version = results[-1].version
        written = await sentinel.download_report(
            MODEL, report_dir / f"{MODEL}-v{version}", version=version
        )
        report = next(f.path for f in written.files if f.name == "report.md")
    _summary(
        results, ui_url, *loop, report=report, mlflow_url=mlflow_url,
        experiment=f"{settings.mlflow_experiment_prefix}{MODEL}",
    )  # fmt: skip
    return 0
