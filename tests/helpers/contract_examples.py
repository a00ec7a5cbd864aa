"""One example instance of every contract model (the round-trip test requires it).

Add an example here whenever you add a Contract subclass.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from activities.contracts.bases import BaseRecord, CatalogBase
from activities.contracts.dataset import (
    AssembleRequest,
    AssembleResult,
    MinCounts,
    SnapshotRef,
    SplitRatios,
)
from activities.contracts.training import (
    ArchitectureBase,
    EpochSummary,
    Hyperparameters,
    RegistryBase,
    S3Base,
    TrainMetrics,
    TrainRequest,
    TrainResult,
    WriteControlRequest,
    WriteControlResult,
)

EXAMPLES: list[BaseModel] = [
    SplitRatios(train=0.7, val=0.2, test=0.1),
    MinCounts(train=10, val=2, test=2),
    SnapshotRef(
        dataset="parts",
        bucket="sentinel-data",
        key="snapshots/parts/" + "ab" * 32 + ".json",
        sha256="ab" * 32,
        class_names=["bolt", "nut"],
        counts={"train": 8, "val": 1, "test": 1},
    ),
    AssembleRequest(
        dataset="parts",
        prefix="datasets/parts",
        format="coco",
        bucket="other-bucket",
        class_names=["bolt", "nut"],
        verified_key="datasets/parts/verified.jsonl",
        split_ratios=SplitRatios(train=0.7, val=0.2, test=0.1),
        test_prefix="images/golden/",
        min_counts=MinCounts(train=10, val=2, test=2),
        max_examples=3,
    ),
    AssembleResult(
        snapshot=SnapshotRef(
            dataset="parts",
            bucket="sentinel-data",
            key="snapshots/parts/" + "cd" * 32 + ".json",
            sha256="cd" * 32,
            class_names=["bolt"],
            counts={"train": 8, "val": 1, "test": 1},
        ),
        counts={"train": 8, "val": 1, "test": 1},
        class_names=["bolt"],
        report={"duplicate_image": 1, "too_small": 0},
        unverified=2,
        reused=True,
    ),
]

# Training (issue 4)
_SNAPSHOT = SnapshotRef(
    dataset="parts",
    bucket="sentinel-data",
    key="snapshots/parts/" + "ef" * 32 + ".json",
    sha256="ef" * 32,
    class_names=["bolt", "nut"],
    counts={"train": 8, "val": 2, "test": 0},
)
_HYPERPARAMETERS = Hyperparameters(
    epochs=30, imgsz=96, batch=8, lr0=0.005, patience=10, seed=3, optimizer="AdamW",
    device="cpu", workers=2, extra={"mosaic": 0.0, "cos_lr": True, "freeze": [0, 1]},
)  # fmt: skip
_METRICS = TrainMetrics(
    map50=0.9, map50_95=0.6, precision=0.8, recall=0.7, losses={"train/box_loss": 1.2}
)
EXAMPLES.extend(
    [
        _HYPERPARAMETERS,
        RegistryBase(model="parts", version="v3"),
        S3Base(bucket="sentinel-models", key="pretrained/yolov8n.pt", sha256="12" * 32),
        ArchitectureBase(name="yolov8s.yaml"),
        CatalogBase(name="yolo11n.pt"),
        BaseRecord(spec="weights:yolo11n.pt", sha256="12" * 32),
        TrainRequest(
            snapshot=_SNAPSHOT,
            model_name="parts",
            base=S3Base(bucket="sentinel-models", key="pretrained/yolov8n.pt", sha256="12" * 32),
            hyperparameters=_HYPERPARAMETERS,
            heartbeat_timeout_seconds=30,
            min_batch=2,
        ),
        _METRICS,
        EpochSummary(epoch=3, map50=0.5, map50_95=0.3, box_loss=1.1, cls_loss=0.9),
        TrainResult(
            run_prefix="runs/retrain-parts/",
            bucket="sentinel-runs",
            best_key="runs/retrain-parts/best.pt",
            best_sha256="34" * 32,
            last_key="runs/retrain-parts/last.pt",
            last_sha256="56" * 32,
            results_csv_key="runs/retrain-parts/results.csv",
            epochs_requested=30,
            epochs_done=12,
            resumed_from_epoch=7,
            stopped_early=True,
            stop_reason="requested",
            batch=4,
            device="0",
            attempt=2,
            metrics=_METRICS,
            history=[EpochSummary(epoch=12, map50=0.9)],
            base=BaseRecord(spec="registry:parts@3", sha256="78" * 32),
            base_downloaded=True,
        ),
        WriteControlRequest(run_id="retrain-parts", reason="good enough"),
        WriteControlResult(bucket="sentinel-runs", key="runs/retrain-parts/control/stop_early"),
    ]
)

# Evaluation, gate, export and registry (issue 5)
from tests.helpers.registry_examples import EXAMPLES as _REGISTRY_EXAMPLES  # noqa: E402

EXAMPLES.extend(_REGISTRY_EXAMPLES)

# Retrain workflow, controller, notifications (issue 6)
from activities.contracts.controller import (  # noqa: E402
    CheckResult,
    ControllerConfig,
    CountNewRequest,
    CountNewResult,
)
from activities.contracts.gate import GateDecision  # noqa: E402
from activities.contracts.notify import (  # noqa: E402
    NotifyRequest,
    NotifyResult,
    ProductionNotice,
    RunNotice,
    WebhookHeader,
)
from activities.contracts.retention import GcCategory, GcRequest, GcResult  # noqa: E402
from activities.contracts.retrain import (  # noqa: E402
    ApprovalDecision,
    ApprovalPolicy,
    EvaluationOptions,
    ExportOptions,
    Progress,
    RetrainRequest,
    RetrainResult,
    TrainingProgress,
)

_DATASET = AssembleRequest(dataset="shapes", prefix="datasets/shapes")
_RETRAIN = RetrainRequest(
    model_name="shapes",
    dataset=_DATASET,
    base=RegistryBase(model="shapes", version="3"),
    hyperparameters=Hyperparameters(epochs=5, imgsz=96, extra={"mosaic": 0.0}),
    evaluation=EvaluationOptions(bootstrap_resamples=200, ci_level=0.9),
    export=ExportOptions(opset=17, dynamic=True),
    approval=ApprovalPolicy(required=True, timeout_seconds=3600, on_timeout="approve"),
    cpu_task_queue="cpu-q",
    gpu_task_queue="gpu-q",
)
EXAMPLES.extend(
    [
        _RETRAIN,
        RetrainResult(
            model_name="shapes",
            version=4,
            promoted=True,
            reason="promoted: +0.02",
            production_version=4,
            candidate_map50_95=0.61,
            champion_map50_95=0.59,
            champion_version=3,
            epochs_done=5,
            stopped_early=False,
            snapshot_key="snapshots/shapes/ab.json",
            dataset_counts={"train": 8, "test": 1},
            artifacts={"model.pt": "models/shapes/v4/model.pt"},
            duration_seconds=12.5,
        ),
        Progress(
            model_name="shapes",
            stage="training",
            epoch=2,
            epochs=5,
            metrics={"map50": 0.4},
            dataset_counts={"train": 8},
            elapsed_seconds=3.0,
            eta_seconds=4.5,
            candidate_version=None,
            approval="pending",
            decision=GateDecision(promote=True, reason="promoted", candidate_map50_95=0.6),
            stop_early_requested=True,
            attempt=2,
            resumed_from_epoch=1,
            live=True,
        ),
        TrainingProgress(
            epoch=2, epochs=5, metrics={"map50": 0.4}, attempt=2, resumed_from_epoch=1
        ),
        ApprovalDecision(by="alice", comment="ship it"),
        ApprovalPolicy(required=True),
        EvaluationOptions(),
        ExportOptions(simplify=False),
        ControllerConfig(request=_RETRAIN, threshold=25),
        CountNewRequest(model="shapes", dataset=_DATASET),
        CountNewResult(verified=30, new_verified=12, production_version=3),
        CheckResult(model="shapes", new_verified=12, threshold=25, started=False, reason="12 < 25"),
        NotifyRequest(
            model_name="shapes",
            workflow_id="retrain-shapes",
            outcome="failed",
            reason="bad input",
            metrics={"map50": 0.1},
            duration_seconds=3.0,
        ),
        NotifyResult(delivered=False, detail="webhook failed: refused"),
        WebhookHeader(delivery_id="6c1f7f0e-3b1c-5d35-9d3e-5e6e7471a5c2", timestamp=1764633600),
        RunNotice(
            event="awaiting_approval",
            delivery_id="6c1f7f0e-3b1c-5d35-9d3e-5e6e7471a5c2",
            timestamp=1764633600,
            model_name="shapes",
            workflow_id="retrain-shapes",
            outcome="awaiting_approval",
            reason="promote: +0.02",
            metrics={"map50_95": 0.5},
            approve_command='sentinel retrain approve shapes --by "$USER" --comment "..."',
            reject_command='sentinel retrain reject shapes --by "$USER" --comment "..."',
        ),
        ProductionNotice(
            event="rolled_back",
            delivery_id="0d5bb5a4-7f43-5b0e-8a53-3a4b1e0c7e11",
            timestamp=1764633600,
            model_name="shapes",
            version=2,
            previous_version=3,
            action="rollback",
            reason="bad in the field",
            request_id="cli-rollback-1",
            at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
            seq=4,
        ),
    ]
)

_GC_CATEGORY = GcCategory(objects=3, bytes=4096, examples=["sentinel-runs/runs/r/control/x"])
EXAMPLES.extend(
    [
        GcRequest(dry_run=True, grace_hours=12.0),
        _GC_CATEGORY,
        GcResult(
            dry_run=True,
            categories={"controls": _GC_CATEGORY},
            runs_seen=4,
            models_seen=1,
            skipped_running=["retrain-shapes"],
            watermarks=["shapes v7"],
        ),
    ]
)

# Pretrained-weights catalog and model import (issue 15)
from tests.helpers.weights_examples import EXAMPLES as _WEIGHTS_EXAMPLES  # noqa: E402

EXAMPLES.extend(_WEIGHTS_EXAMPLES)

# Read-only looks: dataset validation, training logs (issue 17)
from activities.contracts.inspection import (  # noqa: E402
    DatasetValidation,
    TrainingLogRequest,
    TrainingLogResult,
)

EXAMPLES.extend(
    [
        DatasetValidation(
            dataset="shapes",
            bucket="sentinel-data",
            prefix="datasets/shapes",
            format="yolo",
            listed=41,
            images=20,
            unverified=2,
            usable=17,
            class_names=["circle", "square"],
            findings={"duplicate_image": 1},
            examples={"duplicate_image": ["datasets/shapes/images/b.png: same content as a.png"]},
            split_counts={"train": 13, "val": 2, "test": 2},
            class_counts={"train": {"circle": 20, "square": 11}},
            can_train=False,
            problem="too few images",
        ),
        TrainingLogRequest(workflow_id="retrain-shapes", attempt=2, max_bytes=1000),
        TrainingLogResult(
            workflow_id="retrain-shapes",
            attempts=[1, 2],
            attempt=2,
            key="runs/retrain-shapes/logs/attempt-2.log",
            size=2000,
            truncated=True,
            text="epoch 3/5 ...",
        ),
    ]
)

# Batch prediction (issue 16)
from tests.helpers.predict_factories import EXAMPLES as _PREDICT_EXAMPLES  # noqa: E402

EXAMPLES.extend(_PREDICT_EXAMPLES)
