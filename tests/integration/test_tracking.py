"""Experiment tracking and operator metrics on the real stack: a real MLflow server process,
real Temporal, real S3, real (tiny) training in worker processes that are killed for real.

One retrain whose GPU worker is SIGKILLed mid-training and resumed by another: while it runs,
a plain HTTP GET of the worker's metrics port shows our metrics and the Temporal SDK's; at the
end MLflow holds exactly one run for it, with every epoch once, its parameters, lineage,
evaluation and decision, and version 1 registered with the production alias. Then, without
training: a second attempt never logs an epoch twice, and MLflow's model registry keeps our
numbers and aliases through publishes, a rollback and damage done to it behind our back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from temporalio.client import Client

from activities.contracts.registry import PromoteVersionRequest, PublishRequest, RollbackRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import layout
from activities.registry.activity import RegistryActivities
from activities.registry.core import Registry
from activities.tracking import Tracking
from activities.training.checkpoints import epoch_of_key
from tests.helpers.factories import (
    AT,
    SNAPSHOT,
    evaluation,
    export_result,
    gate,
    tiny_retrain_request,
    unique_model,
    weights,
)
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
    assert params["base"] == "architecture:yolov8n.yaml"
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


# ---------------------------------------------------------------------- no training needed
def _tracking(settings: Settings, url: str) -> Tracking:
    return Tracking.from_settings(settings.model_copy(update={"mlflow_tracking_uri": url}))


def _flush(tracking: Tracking) -> None:
    assert tracking.sink is not None and tracking.sink.flush(120), "MLflow records still waiting"


def test_a_resumed_attempt_never_logs_an_epoch_twice(
    settings: Settings, mlflow_server: MlflowServer
) -> None:
    tracking = _tracking(settings, mlflow_server.url)
    model, run_key = unique_model("dedupe"), uuid.uuid4().hex
    first = tracking.run(model, f"retrain-{model}", run_key)
    for epoch in (1, 2, 3):
        first.epoch(epoch, {"train/box_loss": float(epoch)})
    first.metrics({"test/mAP50-95": 0.5})
    _flush(tracking)
    # Another attempt (as on another worker: it learns from MLflow what is logged) trains
    # epochs 2 and 3 again from an older checkpoint, then publish backfills from results.csv.
    second = tracking.run(model, f"retrain-{model}", run_key)
    for epoch in (2, 3, 4):
        second.epoch(epoch, {"train/box_loss": 10.0 * epoch})
    second.backfill({epoch: {"train/box_loss": 100.0 * epoch} for epoch in range(1, 6)})
    second.metrics({"test/mAP50-95": 0.6, "test/mAP50": 0.7})  # a retried evaluation
    _flush(tracking)

    mlflow = MlflowClient(mlflow_server.url)
    found = mlflow.get_experiment_by_name(f"{settings.mlflow_experiment_prefix}{model}")
    assert found is not None
    runs = mlflow.search_runs([found.experiment_id], run_view_type=ViewType.ALL)
    assert len(runs) == 1
    history = mlflow.get_metric_history(runs[0].info.run_id, "train/box_loss")
    assert sorted((m.step, m.value) for m in history) == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 500.0),
    ]  # fmt: skip
    summary = {key: [m.value for m in mlflow.get_metric_history(runs[0].info.run_id, key)]
               for key in ("test/mAP50-95", "test/mAP50")}  # fmt: skip
    assert summary == {"test/mAP50-95": [0.5], "test/mAP50": [0.7]}
    assert second.status().lost == 0 and second.status_line() is None


def _publish_request(
    store: ObjectStore, settings: Settings, model: str, *, promote: bool, champion: int | None
) -> PublishRequest:
    """A publish request whose (stand-in) weights and ONNX file exist in the runs bucket."""
    workflow_id = f"retrain-{model}"
    run_id = uuid.uuid4().hex
    pt = store.put_bytes(settings.runs_bucket, f"runs/{run_id}/best.pt", run_id.encode())
    onnx = store.put_bytes(settings.runs_bucket, f"runs/{run_id}/m.onnx", b"onnx" + pt.key.encode())
    pt_ref = weights(pt.key, pt.sha256 or "", settings.runs_bucket)
    exported = export_result(weights(onnx.key, onnx.sha256 or "", settings.runs_bucket), pt_ref)
    score = 0.6 if promote else 0.4
    return PublishRequest(
        model=model,
        workflow_id=workflow_id,
        run_id=run_id,
        created_at=AT,
        candidate=pt_ref,
        export=exported,
        evaluation=evaluation(score, 0.5 if champion else None, champion, model=model),
        gate=gate(promote),
        snapshot=SNAPSHOT,
    )


def test_mlflow_registry_follows_ours_with_our_numbers_and_is_repaired_from_it(
    settings: Settings, store: ObjectStore, mlflow_server: MlflowServer
) -> None:
    tracking = _tracking(settings, mlflow_server.url)
    registry = RegistryActivities(settings, store, tracking=tracking)
    model = unique_model("mirror")
    registry.publish(_publish_request(store, settings, model, promote=True, champion=None))  # v1
    # A claim whose run died: our v2 never exists, MLflow's number 2 must not be v3.
    store.put_bytes(settings.models_bucket, layout.claim_key(model, 2), b'{"run_id": "dead"}')
    registry.publish(_publish_request(store, settings, model, promote=True, champion=1))  # v3
    registry.publish(_publish_request(store, settings, model, promote=False, champion=3))  # v4
    _flush(tracking)
    mlflow = MlflowClient(mlflow_server.url)

    def mirrored() -> tuple[dict[str, str], dict[str, str]]:
        versions = mlflow.search_model_versions(f"name = '{model}'")
        numbers = {v.tags["sentinel.version"]: v.version for v in versions}
        return numbers, mlflow.get_registered_model(model).aliases

    assert mirrored() == ({"1": "1", "3": "3", "4": "4"}, {"production": "3"})
    run = mlflow.get_model_version(model, "3").run_id
    assert mlflow.get_run(run).data.tags["sentinel.version"] == "3"

    registry.rollback_production(
        RollbackRequest(model=model, reason="bad", request_id="r1", requested_at=AT)
    )
    _flush(tracking)
    assert mirrored()[1] == {"production": "1"}

    # Someone changes MLflow's registry behind our back: the next registry operation (here a
    # promote of what is production already, which moves nothing of ours) repairs it.
    mlflow.delete_registered_model(model)
    registry.promote_version(
        PromoteVersionRequest(model=model, version=1, reason="check", request_id="p1",
                              requested_at=AT)
    )  # fmt: skip
    _flush(tracking)
    assert mirrored() == ({"1": "1", "3": "3", "4": "4"}, {"production": "1"})
    mlflow.set_registered_model_alias(model, "production", "4")
    registry.promote_version(
        PromoteVersionRequest(model=model, version=1, reason="check", request_id="p2",
                              requested_at=AT)
    )  # fmt: skip
    _flush(tracking)
    assert mirrored()[1] == {"production": "1"}
