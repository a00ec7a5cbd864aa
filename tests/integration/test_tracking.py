"""Experiment tracking and operator metrics on the real stack: a real MLflow server process,
real Temporal, real S3, real (tiny) training in worker processes that are killed for real.

One retrain whose GPU worker is SIGKILLed mid-training and resumed by another: while it runs,
a plain HTTP GET of the worker's metrics port shows our metrics and the Temporal SDK's; at the
end MLflow holds exactly one run for it, with every epoch once, its parameters, lineage,
evaluation and decision, and version 1 registered with the production alias. (Without
training, in seconds: ``test_tracking_registry.py``.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from prometheus_client import REGISTRY
from temporalio.client import Client

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry.core import Registry
from activities.tracking import Tracking
from activities.training.checkpoints import epoch_of_key
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.polling import eventually
from tests.helpers.prometheus import Scrape, scrape
from tests.helpers.slow_links import ThrottledProxy
from tests.helpers.stack import Queues, RunWorkers, WorkerProcess, sentinel_for
from workers.dev import synthetic
from workers.dev.mlflow_server import MlflowServer
from workers.dev.stack import free_port

pytestmark = pytest.mark.timeout(600)
EPOCHS = 8


@pytest.fixture(scope="module")
def prefix(settings: Settings, store: ObjectStore) -> str:
    prefix = f"datasets/tracking-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=5, verified=True
    )
    return prefix


def _epochs_in_mlflow(mlflow: MlflowClient, experiment: str, runs: dict[str, str]) -> list[int]:
    """Steps of the epoch marker of the experiment's run so far (``runs`` caches its id)."""
    if experiment not in runs:
        found = mlflow.get_experiment_by_name(experiment)
        listed = mlflow.search_runs([found.experiment_id]) if found else []
        if not listed:
            return []
        runs[experiment] = listed[0].info.run_id
    return sorted(int(m.step) for m in mlflow.get_metric_history(runs[experiment], "epoch"))


async def test_killed_and_resumed_training_is_one_mlflow_run_and_its_worker_shows_metrics(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    worker_process: Callable[..., WorkerProcess],
    mlflow_server: MlflowServer,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
) -> None:
    url = mlflow_server.url
    mlflow = MlflowClient(url)
    sentinel = sentinel_for(client, queues)
    request = tiny_retrain_request(
        prefix, queues, epochs=EPOCHS, train_heartbeat_timeout_seconds=10
    )
    model = request.model_name
    experiment = f"{settings.mlflow_experiment_prefix}{model}"
    first_port, second_port = free_port(), free_port()
    # The first worker's uploads crawl (a checkpoint takes seconds), so MLflow gets epochs
    # well before their checkpoints are stored: killed then, the run resumes from an older
    # checkpoint and trains epochs again whose steps MLflow already has.
    slow_s3 = ThrottledProxy(settings.s3_endpoint, bytes_per_second=1_000_000).start()

    async with run_workers(("cpu",), mlflow_tracking_uri=url):
        first = worker_process(
            "gpu",
            SENTINEL_MLFLOW_TRACKING_URI=url,
            SENTINEL_METRICS_PORT=str(first_port),
            SENTINEL_S3_ENDPOINT=slow_s3.endpoint,
        )
        await sentinel.start_retrain(request)

        async def training_metrics() -> Scrape | None:
            found = await asyncio.to_thread(scrape, first_port)
            epoch = found.value("sentinel_training_epoch", model=model)
            return found if epoch is not None and epoch >= 1 else None

        # The worker is busy training: a GET of its port shows it (OSError: not up yet).
        during = await eventually(training_metrics, timeout=240, interval=0.5, ignore=OSError)

        # Kill it as soon as a checkpoint is stored (the next one has just begun uploading):
        # MLflow already holds later epochs, which the resumed attempt trains again.
        checkpoints, run_ids = f"runs/retrain-{model}/checkpoints/", {}

        def ahead_of_checkpoints() -> int | None:
            stored = [epoch_of_key(o.key) for o in store.list(settings.runs_bucket, checkpoints)]
            newest = max((epoch for epoch in stored if epoch), default=0)
            logged = _epochs_in_mlflow(mlflow, experiment, run_ids)
            return max(logged) if newest and logged and max(logged) > newest else None

        at_kill = await eventually(
            lambda: asyncio.to_thread(ahead_of_checkpoints), timeout=240, interval=0.05,
            ignore=Exception, message="an epoch in MLflow before its checkpoint is stored",
        )  # fmt: skip
        first.kill()
        slow_s3.stop()
        second = worker_process(
            "gpu", SENTINEL_MLFLOW_TRACKING_URI=url, SENTINEL_METRICS_PORT=str(second_port)
        )
        result = await asyncio.wait_for(sentinel.result(model), 360)
        after = await asyncio.to_thread(scrape, second_port)
        second.terminate()
        cpu_settings = queues.settings.model_copy(update={"mlflow_tracking_uri": url})
        assert await asyncio.to_thread(Tracking.from_settings(cpu_settings).sink.flush, 120)  # type: ignore[union-attr]

    # --- the worker's metrics port, during the run and after the resume
    assert during.value("sentinel_training_epochs", model=model) == EPOCHS
    assert during.value("sentinel_activities_running", activity="train") == 1
    assert during.value("sentinel_training_images_per_second", model=model) > 0
    heartbeat = during.value("sentinel_activity_last_heartbeat_timestamp_seconds", activity="train")
    assert heartbeat is not None and heartbeat > 0
    assert any(name.startswith("temporal_") for name in during.names()), "no SDK metrics"
    assert after.value("sentinel_training_resumes_total", model=model) == 1
    assert after.value("sentinel_activity_retries_total", activity="train") >= 1
    assert after.value("sentinel_checkpoint_upload_bytes_total") > 0
    # The SDK metrics the dashboard reads (tests/deploy checks the names it uses exist).
    sdk = {
        "temporal_worker_task_slots_available",
        "temporal_activity_schedule_to_start_latency_bucket",
    }
    assert sdk <= after.names(), sorted(n for n in after.names() if n.startswith("temporal_"))

    # The CPU worker ran in this process: its publish outcome is in this registry.
    published = REGISTRY.get_sample_value(
        "sentinel_publish_outcomes_total", {"model": model, "outcome": "promoted"}
    )
    assert published == 1

    # --- our registry: v1, and the run really resumed from a checkpoint
    meta = Registry(store, settings.models_bucket).metadata(model, 1)
    assert result.version == 1 and meta.resumed_from_epoch is not None
    assert meta.resumed_from_epoch < at_kill, "no logged epoch was trained again"

    # --- MLflow: one run, each epoch once, everything a reader of the run needs
    found = mlflow.get_experiment_by_name(experiment)
    assert found is not None
    runs = mlflow.search_runs([found.experiment_id], run_view_type=ViewType.ALL)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["sentinel.workflow_id"] == f"retrain-{model}"
    for key in run.data.metrics:
        steps = [m.step for m in mlflow.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} logged twice for a step: {sorted(steps)}"
    every_epoch = list(range(1, EPOCHS + 1))
    assert _epochs_in_mlflow(mlflow, experiment, {}) == every_epoch
    losses = mlflow.get_metric_history(run.info.run_id, "train/box_loss")
    assert sorted(m.step for m in losses) == every_epoch
    params = run.data.params
    assert params["epochs"] == str(EPOCHS) and params["task"] == "detect"
    assert params["base"] == "yolov8n.yaml"  # the base as the request named it
    assert params["dataset.sha256"] == meta.snapshot.sha256
    assert params["dataset.source"].endswith(prefix) and len(params["dataset.test_sha256"]) == 64
    contexts = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert len(run.inputs.dataset_inputs) == 2 and set(contexts) == {"training", "test"}
    assert contexts["training"].digest == meta.snapshot.sha256[:32]
    assert run.data.metrics["test/mAP50-95"] == pytest.approx(meta.candidate.map50_95)
    assert run.data.tags["sentinel.version"] == "1"
    assert run.data.tags["sentinel.gate.reason"] == meta.gate.reason
    artifacts = {a.path for a in mlflow.list_artifacts(run.info.run_id, "registry")}
    assert {"registry/report.md", "registry/results.csv"} <= artifacts

    # --- MLflow's model registry mirrors ours
    async def registered() -> bool:
        versions = mlflow.search_model_versions(f"name = '{model}'")
        return [v.version for v in versions] == ["1"]

    await eventually(registered, timeout=60, interval=0.5, ignore=Exception)
    version = mlflow.get_model_version(model, "1")
    assert version.run_id == run.info.run_id and version.tags["sentinel.version"] == "1"
    assert mlflow.get_registered_model(model).aliases == {"production": "1"}
