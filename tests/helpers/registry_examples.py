"""Example contracts of evaluation, gate, export and registry, for the round-trip test.

``tests/unit/contract_examples.py`` adds these to its list (every contract must survive
JSON and the pydantic data converter unchanged); ``tests/unit/test_registry_logic.py`` reads
metadata examples from it. Built from :mod:`tests.helpers.factories`.
"""

from __future__ import annotations

from pydantic import BaseModel

from activities.contracts.evaluation import DifferenceCI, EvaluateRequest, EvaluationOptions
from activities.contracts.export import ExportOptions, ExportRequest
from activities.contracts.gate import ClassLoss, GatePolicy
from activities.contracts.integrity import (
    ArtifactCheck,
    VerifyModelRequest,
    VerifyModelResult,
    VersionCheck,
)
from activities.contracts.registry import (
    ArtifactRecord,
    DownloadLinksRequest,
    LatestAlias,
    ListVersionsRequest,
    ListVersionsResult,
    ModelSignature,
    PromoteVersionRequest,
    PublishRequest,
    RollbackRequest,
    ShowVersionRequest,
    ShowVersionResult,
    TensorSpec,
)
from tests.helpers.factories import (
    AT,
    SNAPSHOT,
    alias_event,
    download_links_result,
    evaluation,
    evidence,
    export_result,
    gate,
    metrics,
    model_version,
    parity,
    promote_version_result,
    publish_result,
    rollback_result,
    version_summary,
    weights,
    with_class_loss,
)

_PT = weights("runs/retrain-parts/weights/best.pt")
_ONNX = weights("runs/retrain-parts/export/model-1111.onnx", "22" * 32)
_META = model_version("parts", 3)
_SIGNATURE = ModelSignature(
    task="detect",
    inputs=[TensorSpec(name="images", shape=[1, 3, 640, 640], dtype="float32")],
    outputs=[TensorSpec(name="output0", shape=[1, 6, "anchors"], dtype="float32")],
    class_names=["bolt", "nut"],
)
_LOSS = ClassLoss(
    name="square",
    instances=13,
    candidate_ap50_95=0.1,
    champion_ap50_95=0.7,
    difference=-0.6,
    ci_low=-0.7,
    ci_high=-0.5,
    ci_level=0.95,
)

EXAMPLES: list[BaseModel] = [
    _PT,
    metrics(0.5),
    DifferenceCI(estimate=0.1, low=0.0, high=0.2, level=0.9, resamples=10, seed=3),
    EvaluateRequest(
        model="parts",
        snapshot=SNAPSHOT,
        candidate=_PT,
        imgsz=96,
        batch=4,
        device="cpu",
        options=EvaluationOptions(
            conf=0.01,
            iou=0.6,
            bootstrap_resamples=50,
            bootstrap_seed=7,
            ci_level=0.9,
            skip_comparison_on_class_mismatch=True,
        ),
    ),
    evaluation(0.6, 0.5, 2),
    with_class_loss(evaluation(0.6, 0.5, 2)).model_copy(update={"evidence": evidence()}),
    GatePolicy(floor=0.2, min_improvement=0.01, require_confidence=True),
    GatePolicy(per_class_tolerance=None, min_class_instances=3),
    gate(),
    gate(False).model_copy(update={"class_losses": [_LOSS]}),
    ExportRequest(
        weights=_PT,
        snapshot=SNAPSHOT,
        output_prefix="runs/retrain-parts/export",
        imgsz=96,
        conf=0.01,
        iou=0.6,
        parity_images=2,
        options=ExportOptions(
            opset=17, dynamic=True, simplify=False, output_tolerance=0.001, map_tolerance=0.02
        ),
    ),
    parity(False),
    export_result(_ONNX, _PT),
    ArtifactRecord(key="models/parts/v3/model.onnx", sha256="44" * 32, size=10),
    _META,
    PublishRequest(
        model="parts",
        workflow_id="retrain-parts",
        run_id="run-1",
        created_at=AT,
        candidate=_PT,
        export=export_result(_ONNX, _PT),
        evaluation=evaluation(0.6, 0.5, 2),
        gate=gate(),
        snapshot=SNAPSHOT,
        parent_version=2,
        hyperparameters={"epochs": 30},
        epochs=30,
        resumed_from_epoch=4,
        results_csv_key="runs/retrain-parts/results.csv",
    ),
    publish_result("parts", 3, reason="promoted"),
    alias_event(),
    LatestAlias(version=3, created_at=AT),
    version_summary(3),
    ListVersionsRequest(model="parts", limit=5),
    ListVersionsResult(
        model="parts", versions=[], production_version=None, latest_version=None, total=0
    ),
    ShowVersionRequest(model="parts", version=None, alias="latest"),
    ShowVersionResult(
        metadata=_META, production=True, latest=False, report_key="models/parts/v3/report.md"
    ),
    PromoteVersionRequest(
        model="parts",
        version=3,
        reason="hotfix",
        request_id="cli-1",
        requested_at=AT,
        expected_production=2,
    ),
    PromoteVersionRequest(
        model="parts",
        version=1,
        reason="first",
        request_id="cli-0",
        requested_at=AT,
        expected_production="none",
    ),
    promote_version_result("parts", 3),
    RollbackRequest(
        model="parts",
        reason="regression",
        request_id="cli-2",
        requested_at=AT,
        expected_production=3,
    ),
    rollback_result("parts", 3),
    DownloadLinksRequest(model="parts", version=None, alias="latest", what="report"),
    download_links_result("parts", 3),
    *download_links_result("parts", 3).files,
    _LOSS,
    *evidence().files[:1],
    evidence(),
    evidence().comparison,
    evidence().comparison.worst[0],
    evidence().comparison.worst[0].candidate,
    model_version("parts", 3).model_copy(
        update={"comparison": evidence().comparison, "per_class_ci": {}}
    ),
    _SIGNATURE,
    *_SIGNATURE.inputs,
    _META.model_copy(update={"model_signature": _SIGNATURE}),
    ListVersionsResult(
        model="parts",
        versions=[],
        production_version=2,
        latest_version=3,
        total=1,
        untrusted={3: "sentinel-models/models/parts/v3/metadata.json is not signed"},
    ),
    VerifyModelRequest(model="parts", version=3),
    VersionCheck(version=2, problem="IntegrityError: not signed"),
    ArtifactCheck(name="report.md", key="models/parts/v3/report.md"),
    VerifyModelResult(
        model="parts",
        versions=[
            VersionCheck(
                version=3,
                artifacts=[
                    ArtifactCheck(name="model.pt", key="models/parts/v3/model.pt"),
                    ArtifactCheck(
                        name="model.onnx",
                        key="models/parts/v3/model.onnx",
                        problem="IntegrityError: sentinel-models/models/parts/v3/model.onnx "
                        "failed verification",
                    ),
                ],
            ),
            VersionCheck(version=2, problem="IntegrityError: not signed"),
        ],
        history_entries=2,
    ),
]
