"""Example contracts of evaluation, gate, export and registry (issue 5).

Used by ``tests/unit/contract_examples.py`` (round-trip test) and as factories by the
registry tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from activities.contracts.dataset import SnapshotRef
from activities.contracts.evaluation import (
    DifferenceCI,
    EvaluateRequest,
    EvaluateResult,
    ModelMetrics,
    WeightsRef,
)
from activities.contracts.export import ExportRequest, ExportResult, ParityReport
from activities.contracts.gate import GateDecision, GatePolicy
from activities.contracts.registry import (
    AliasEvent,
    ArtifactRecord,
    LatestAlias,
    ListVersionsRequest,
    ListVersionsResult,
    ModelVersion,
    PromoteVersionRequest,
    PromoteVersionResult,
    PublishRequest,
    PublishResult,
    RollbackRequest,
    RollbackResult,
    ShowVersionRequest,
    ShowVersionResult,
    VersionSummary,
)

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SNAPSHOT = SnapshotRef(
    dataset="parts",
    bucket="sentinel-data",
    key="snapshots/parts/" + "ab" * 32 + ".json",
    sha256="ab" * 32,
    class_names=["circle", "square", "triangle"],
    counts={"train": 0, "val": 0, "test": 16},
)


def metrics(map50_95: float) -> ModelMetrics:
    return ModelMetrics(
        precision=0.8,
        recall=0.7,
        map50=min(1.0, map50_95 + 0.3),
        map50_95=map50_95,
        per_class_ap50={"circle": 0.9},
        per_class_ap50_95={"circle": map50_95},
    )


def weights(key: str, sha256: str = "11" * 32, bucket: str = "sentinel-runs") -> WeightsRef:
    return WeightsRef(bucket=bucket, key=key, sha256=sha256)


def parity(passed: bool = True) -> ParityReport:
    return ParityReport(
        passed=passed,
        reason="ok: max abs output difference 1e-4" if passed else "max abs diff 3.2 > 0.01",
        checker_ok=True,
        max_abs_diff=1e-4 if passed else 3.2,
        output_tolerance=0.01,
        images_compared=4,
        pt_map50_95=0.6,
        onnx_map50_95=0.6 if passed else 0.1,
        map_tolerance=0.01,
    )


def evaluation(
    candidate: float = 0.6, champion: float | None = None, champion_version: int | None = None
) -> EvaluateResult:
    ci = None
    if champion is not None:
        d = candidate - champion
        ci = DifferenceCI(
            estimate=d, low=d - 0.05, high=d + 0.05, level=0.95, resamples=100, seed=0
        )
    return EvaluateResult(
        model="parts",
        class_names=SNAPSHOT.class_names,
        images=16,
        instances=31,
        instances_per_class={"circle": 8, "square": 13, "triangle": 10},
        candidate=metrics(candidate),
        champion=metrics(champion) if champion is not None else None,
        champion_version=champion_version,
        ci=ci,
        imgsz=96,
        conf=0.001,
        iou=0.7,
        versions={"ultralytics": "8.4.190"},
    )


def export_result(onnx: WeightsRef, pt: WeightsRef, passed: bool = True) -> ExportResult:
    return ExportResult(
        pt=pt,
        onnx=onnx,
        opset=18,
        dynamic=False,
        imgsz=96,
        simplified=True,
        parity=parity(passed),
        versions={"onnx": "1.17"},
    )


def gate(promote: bool = True) -> GateDecision:
    return GateDecision(
        promote=promote,
        reason="promoted: example" if promote else "not promoted: example",
        candidate_map50_95=0.6,
    )


_PT = weights("runs/retrain-parts/weights/best.pt")
_ONNX = weights("runs/retrain-parts/export/model-1111.onnx", "22" * 32)
_EVENT = AliasEvent(
    seq=2,
    version=3,
    previous_version=2,
    action="promote",
    reason="hotfix",
    request_id="cli-1",
    at=AT,
)
_META = ModelVersion(
    model="parts",
    version=3,
    parent_version=2,
    created_at=AT,
    workflow_id="retrain-parts",
    run_id="run-1",
    snapshot=SNAPSHOT,
    class_names=SNAPSHOT.class_names,
    hyperparameters={"epochs": 30, "lr0": 0.01, "optimizer": "AdamW", "cos_lr": True, "x": None},
    epochs=30,
    resumed_from_epoch=12,
    candidate=metrics(0.6),
    champion=metrics(0.5),
    champion_version=2,
    ci=DifferenceCI(estimate=0.1, low=0.02, high=0.2, level=0.95, resamples=100, seed=1),
    test_images=16,
    test_instances=31,
    gate=gate(),
    parity=parity(),
    onnx_opset=18,
    onnx_dynamic=False,
    imgsz=96,
    artifacts={
        "model.pt": ArtifactRecord(key="models/parts/v3/model.pt", sha256="33" * 32, size=9)
    },
    source_weights=_PT,
    versions={"torch": "2.4"},
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
        conf=0.01,
        iou=0.6,
        batch=4,
        device="cpu",
        bootstrap_resamples=50,
        bootstrap_seed=7,
        ci_level=0.9,
        skip_comparison_on_class_mismatch=True,
    ),
    evaluation(0.6, 0.5, 2),
    GatePolicy(floor=0.2, min_improvement=0.01, require_confidence=True),
    gate(),
    ExportRequest(
        weights=_PT,
        snapshot=SNAPSHOT,
        output_prefix="runs/retrain-parts/export",
        imgsz=96,
        opset=17,
        dynamic=True,
        simplify=False,
        output_tolerance=0.001,
        map_tolerance=0.02,
        parity_images=2,
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
    PublishResult(
        model="parts",
        version=3,
        promoted=True,
        reason="promoted",
        created=True,
        production_version=3,
        latest_version=3,
        metadata_key="models/parts/v3/metadata.json",
    ),
    _EVENT,
    LatestAlias(version=3, created_at=AT),
    VersionSummary(
        version=3,
        created_at=AT,
        workflow_id="retrain-parts",
        map50_95=0.6,
        gate_promote=True,
        gate_reason="promoted",
        parity_passed=True,
        production=True,
    ),
    ListVersionsRequest(model="parts", limit=5),
    ListVersionsResult(
        model="parts", versions=[], production_version=None, latest_version=None, total=0
    ),
    ShowVersionRequest(model="parts", version=None, alias="latest"),
    ShowVersionResult(
        metadata=_META, production=True, latest=False, report_key="models/parts/v3/report.md"
    ),
    PromoteVersionRequest(
        model="parts", version=3, reason="hotfix", request_id="cli-1", requested_at=AT
    ),
    PromoteVersionResult(model="parts", version=3, previous_version=2, changed=True, event=_EVENT),
    RollbackRequest(model="parts", reason="regression", request_id="cli-2", requested_at=AT),
    RollbackResult(model="parts", from_version=3, to_version=2, event=_EVENT),
]
