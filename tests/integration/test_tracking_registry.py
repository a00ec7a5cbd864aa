"""MLflow tracking without training, on a real MLflow server and the real S3 server: a second
attempt never logs an epoch or a summary metric twice, and MLflow's model registry keeps our
version numbers and production alias through publishes, a rollback and damage done to it
behind our back (our registry is the source of truth)."""

from __future__ import annotations

import uuid

from mlflow import MlflowClient
from mlflow.entities import ViewType

from activities.contracts.registry import PromoteVersionRequest, PublishRequest, RollbackRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import layout
from activities.registry.activity import RegistryActivities
from activities.tracking import Tracking
from tests.helpers.factories import (
    AT,
    SNAPSHOT,
    evaluation,
    export_result,
    gate,
    unique_model,
    weights,
)
from tests.helpers.tiny_onnx import onnx_bytes
from workers.dev.mlflow_server import MlflowServer


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
    onnx_payload = onnx_bytes(b"onnx" + pt.key.encode())  # publish reads its model signature
    onnx = store.put_bytes(settings.runs_bucket, f"runs/{run_id}/m.onnx", onnx_payload)
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
