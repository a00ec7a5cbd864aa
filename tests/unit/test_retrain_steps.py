"""RetrainWorkflow's pure parts: requests it builds, its ids, and the names of its handlers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.workflow import _Definition

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest
from activities.contracts.evaluation import EvaluateRequest, EvaluationOptions
from activities.contracts.export import ExportOptions, ExportRequest
from activities.contracts.registry import PublishResult
from activities.contracts.retrain import RetrainRequest
from activities.contracts.training import Hyperparameters, RegistryBase, TrainMetrics, TrainResult
from tests.helpers.factories import AT, SNAPSHOT, evaluation, export_result, gate, weights
from workflows import retrain_steps as steps
from workflows.gate import apply_parity
from workflows.retrain import RetrainWorkflow, model_name_of, workflow_id_for

REQUEST = RetrainRequest(
    model_name="shapes",
    dataset=AssembleRequest(dataset="shapes", prefix="datasets/shapes"),
    base=RegistryBase(model="shapes", version="3"),
    hyperparameters=Hyperparameters(epochs=5, imgsz=96, device="cpu", extra={"mosaic": 0.0}),
    evaluation=EvaluationOptions(conf=0.01, iou=0.6, bootstrap_resamples=50, ci_level=0.9),
    export=ExportOptions(opset=17, dynamic=True, map_tolerance=0.05),
)
CANDIDATE = weights("runs/retrain-shapes/best.pt")
TRAINED = TrainResult(
    run_prefix="runs/retrain-shapes/",
    bucket="sentinel-runs",
    best_key="runs/retrain-shapes/best.pt",
    best_sha256=CANDIDATE.sha256,
    last_key="runs/retrain-shapes/last.pt",
    last_sha256="22" * 32,
    results_csv_key="runs/retrain-shapes/results.csv",
    epochs_requested=5,
    epochs_done=4,
    resumed_from_epoch=2,
    stopped_early=True,
    stop_reason="requested",
    batch=8,
    device="cpu",
    attempt=2,
    metrics=TrainMetrics(map50=0.5, map50_95=0.3),
)


def test_workflow_id_round_trips_to_the_model_name() -> None:
    assert workflow_id_for("shapes") == "retrain-shapes"
    assert model_name_of(workflow_id_for("my-model-2")) == "my-model-2"
    with pytest.raises(ValueError, match="not a retrain workflow id"):
        model_name_of("versions-shapes-1")


def test_evaluate_and_export_requests_embed_the_retrain_options_as_they_are() -> None:
    evaluate = steps.evaluate_request(REQUEST, SNAPSHOT, CANDIDATE)
    assert evaluate.options == REQUEST.evaluation
    assert (evaluate.imgsz, evaluate.device, evaluate.model) == (96, "cpu", "shapes")
    export = steps.export_request(REQUEST, SNAPSHOT, CANDIDATE, "retrain-shapes")
    assert export.options == REQUEST.export
    assert (export.conf, export.iou) == (0.01, 0.6)  # parity measured like the evaluation
    assert export.output_prefix == "runs/retrain-shapes/export"


def test_retrain_request_json_keeps_its_shape() -> None:
    dumped = REQUEST.model_dump(mode="json")
    assert dumped["evaluation"]["bootstrap_resamples"] == 50
    assert dumped["export"] == {
        "opset": 17,
        "dynamic": True,
        "simplify": True,
        "output_tolerance": 0.01,
        "map_tolerance": 0.05,
    }


@pytest.mark.parametrize(
    "nested",
    [
        steps.evaluate_request(REQUEST, SNAPSHOT, CANDIDATE),
        steps.export_request(REQUEST, SNAPSHOT, CANDIDATE, "retrain-shapes"),
    ],
    ids=["evaluate", "export"],
)
def test_requests_with_flat_options_from_older_workflows_still_validate(
    nested: EvaluateRequest | ExportRequest,
) -> None:
    flat = nested.model_dump(mode="json", exclude={"options"})
    flat.update(nested.options.model_dump(mode="json"))
    assert "options" not in flat
    assert type(nested).model_validate(flat) == nested
    with pytest.raises(ValidationError, match="surprise"):
        type(nested).model_validate({**flat, "surprise": 1})


def test_publish_request_carries_the_decision_with_parity_applied() -> None:
    exported = export_result(weights("runs/retrain-shapes/export/m.onnx"), CANDIDATE, False)
    kwargs = {
        "workflow_id": "retrain-shapes",
        "run_id": "run-1",
        "created_at": AT,
        "trained": TRAINED,
        "evaluation": evaluation(0.6),
        "exported": exported,
        "snapshot": SNAPSHOT,
    }
    decision = apply_parity(gate(True), exported.parity)
    request = steps.publish_request(REQUEST, decision=decision, **kwargs)  # type: ignore[arg-type]
    assert not request.gate.promote and "ONNX parity failed" in request.gate.reason
    assert request.candidate == CANDIDATE and request.parent_version == 3
    assert request.hyperparameters["extra.mosaic"] == 0.0
    assert (request.epochs, request.resumed_from_epoch) == (4, 2)
    # Publishing takes the decision as given: one that ignored the failed parity is refused.
    with pytest.raises(ValidationError, match="ONNX parity failed"):
        steps.publish_request(REQUEST, decision=gate(True), **kwargs)  # type: ignore[arg-type]


def test_retrain_result_takes_the_artifact_keys_from_the_publish_result() -> None:
    artifacts = {"model.pt": "models/shapes/v4/model.pt"}
    published = PublishResult(
        model="shapes",
        version=4,
        promoted=True,
        reason="promoted",
        created=True,
        production_version=4,
        latest_version=4,
        metadata_key="models/shapes/v4/metadata.json",
        artifacts=artifacts,
    )
    result = steps.retrain_result(
        REQUEST,
        published=published,
        evaluation=evaluation(0.6, 0.5, 3),
        trained=TRAINED,
        snapshot=SNAPSHOT,
        counts={"train": 8},
        duration_seconds=2.0,
    )
    assert result.artifacts == artifacts and result.version == 4
    assert (result.champion_version, result.epochs_done, result.stopped_early) == (3, 4, True)


def test_handlers_are_registered_under_the_shared_names() -> None:
    definition = _Definition.must_from_class(RetrainWorkflow)
    assert definition.name == names.RETRAIN_WORKFLOW
    assert set(definition.signals) == {names.TRAINING_PROGRESS_SIGNAL, names.STOP_EARLY_SIGNAL}
    assert set(definition.queries) == {names.PROGRESS_QUERY}
    assert set(definition.updates) == {names.APPROVE_UPDATE, names.REJECT_UPDATE}
