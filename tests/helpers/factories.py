"""Request and result factories: the one place tests build contracts from.

When a contract changes, fix it here. Three groups:

* requests of real runs: :func:`tiny_retrain_request` (64 px, few epochs, real training);
* requests and results of stub runs (``tests/workflows``): :func:`stub_retrain_request` and
  one factory per activity result (:func:`assemble_result`, :func:`train_result`, ...);
* registry values (:func:`evaluation`, :func:`export_result`, :func:`gate`, ...), also used
  by the registry tests and the contract examples (:mod:`tests.helpers.registry_examples`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from activities.contracts.controller import CountNewResult
from activities.contracts.dataset import AssembleRequest, AssembleResult, MinCounts, SnapshotRef
from activities.contracts.evaluation import (
    DifferenceCI,
    EvaluateResult,
    EvaluationOptions,
    ModelMetrics,
    WeightsRef,
)
from activities.contracts.evidence import (
    Evidence,
    EvidenceFile,
    ImageComparison,
    ImageDifference,
    ImageScore,
)
from activities.contracts.export import ExportOptions, ExportResult, ParityReport
from activities.contracts.gate import GateDecision
from activities.contracts.notify import NotifyResult
from activities.contracts.registry import (
    AliasEvent,
    ArtifactRecord,
    DownloadLink,
    DownloadLinksResult,
    ListVersionsResult,
    ModelVersion,
    PromoteVersionResult,
    PublishRequest,
    PublishResult,
    RollbackResult,
    ShowVersionResult,
    VersionSummary,
)
from activities.contracts.retention import CATEGORIES, GcCategory, GcResult
from activities.contracts.retrain import RetrainRequest
from activities.contracts.training import (
    Hyperparameters,
    TrainMetrics,
    TrainResult,
    WriteControlResult,
)

if TYPE_CHECKING:
    from tests.helpers.stack import Queues

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ARTIFACT_NAMES = ("model.pt", "model.onnx", "metadata.json", "results.csv", "report.md")
"""The files of a published version."""


def unique_model(prefix: str = "m") -> str:
    """A model name no other test uses (workflow ids are ``retrain-{model}``)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------- requests
def assemble_request(dataset: str, prefix: str, **updates: Any) -> AssembleRequest:
    """Assemble ``prefix`` as ``dataset``; small minimum counts (a handful of images do)."""
    fields: dict[str, Any] = {"min_counts": MinCounts(train=4, val=1, test=1), **updates}
    return AssembleRequest(dataset=dataset, prefix=prefix, **fields)


def tiny_hyperparameters(epochs: int = 2) -> Hyperparameters:
    """64 px, batch 4, CPU, no augmentation warm-up: seconds per epoch on 24 images."""
    return Hyperparameters(
        epochs=epochs,
        imgsz=64,
        batch=4,
        device="cpu",
        workers=0,
        extra={"mosaic": 0.0, "warmup_epochs": 0.0, "nbs": 4},
    )


def tiny_retrain_request(
    prefix: str,
    queues: Queues,
    *,
    epochs: int = 2,
    model: str | None = None,
    **updates: Any,
) -> RetrainRequest:
    """A small, fast request of a real run: 64 px, few epochs, few bootstrap resamples."""
    model = model or unique_model()
    return RetrainRequest(
        model_name=model,
        dataset=assemble_request(model, prefix),
        hyperparameters=tiny_hyperparameters(epochs),
        evaluation=EvaluationOptions(bootstrap_resamples=50),
        export=ExportOptions(map_tolerance=0.05),
        cpu_task_queue=queues.cpu,
        gpu_task_queue=queues.gpu,
        **updates,
    )


def stub_retrain_request(
    cpu_queue: str, gpu_queue: str, *, model: str | None = None, **updates: Any
) -> RetrainRequest:
    """A request for a run on stub activities (nothing is read: the names just travel)."""
    model = model or unique_model()
    fields: dict[str, Any] = {
        "hyperparameters": Hyperparameters(epochs=5, imgsz=96, device="cpu"),
        "evaluation": EvaluationOptions(bootstrap_resamples=50, conf=0.01, iou=0.6),
        "export": ExportOptions(opset=17, map_tolerance=0.05),
        **updates,
    }
    return RetrainRequest(
        model_name=model,
        dataset=assemble_request(model, f"datasets/{model}"),
        cpu_task_queue=cpu_queue,
        gpu_task_queue=gpu_queue,
        **fields,
    )


# ---------------------------------------------------------------------- registry values
SNAPSHOT = SnapshotRef(
    dataset="parts",
    bucket="sentinel-data",
    key="snapshots/parts/" + "ab" * 32 + ".json",
    sha256="ab" * 32,
    class_names=["circle", "square", "triangle"],
    counts={"train": 0, "val": 0, "test": 16},
)


def metrics(map50_95: float) -> ModelMetrics:
    """Metrics of one model scoring ``map50_95`` (the other numbers derived from it)."""
    return ModelMetrics(
        precision=0.8,
        recall=0.7,
        map50=min(1.0, map50_95 + 0.3),
        map50_95=map50_95,
        per_class_ap50={"circle": 0.9},
        per_class_ap50_95={"circle": map50_95},
    )


def weights(key: str, sha256: str = "11" * 32, bucket: str = "sentinel-runs") -> WeightsRef:
    """A reference to weights in storage."""
    return WeightsRef(bucket=bucket, key=key, sha256=sha256)


def parity(passed: bool = True) -> ParityReport:
    """An ONNX parity report that passed, or failed on the raw outputs."""
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
    candidate: float = 0.6,
    champion: float | None = None,
    champion_version: int | None = None,
    *,
    model: str = "parts",
    snapshot: SnapshotRef = SNAPSHOT,
) -> EvaluateResult:
    """An evaluation: the candidate's score, and the champion's with an interval if given."""
    ci = None
    if champion is not None:
        d = candidate - champion
        ci = DifferenceCI(
            estimate=d, low=d - 0.05, high=d + 0.05, level=0.95, resamples=100, seed=0
        )
    return EvaluateResult(
        model=model,
        class_names=snapshot.class_names,
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


def with_class_loss(
    result: EvaluateResult,
    name: str = "square",
    *,
    candidate: float = 0.1,
    champion: float = 0.7,
    ci: tuple[float, float] = (-0.7, -0.5),
) -> EvaluateResult:
    """``result`` (with a champion) where class ``name`` scores ``candidate`` vs ``champion``,
    its bootstrap interval ``ci``; the other classes keep their numbers, interval around 0."""
    assert result.champion is not None, "a class loss needs a champion"
    cand = result.candidate.per_class_ap50_95 | {name: candidate}
    champ = result.champion.per_class_ap50_95 | {name: champion}
    intervals = {
        other: DifferenceCI(estimate=0.0, low=-0.05, high=0.05, level=0.95, resamples=100, seed=0)
        for other in result.class_names
    }
    intervals[name] = DifferenceCI(
        estimate=candidate - champion, low=ci[0], high=ci[1], level=0.95, resamples=100, seed=0
    )
    return result.model_copy(
        update={
            "candidate": result.candidate.model_copy(update={"per_class_ap50_95": cand}),
            "champion": result.champion.model_copy(update={"per_class_ap50_95": champ}),
            "per_class_ci": intervals,
        }
    )


def evidence(prefix: str = "runs/retrain-parts/evaluation/run-1-1/") -> Evidence:
    """Evidence of an evaluation against a champion: two plots and one picture each way."""

    def file(name: str, byte: str) -> EvidenceFile:
        return EvidenceFile(
            name=name, key=f"{prefix}{name}", sha256=byte * 32, size=100, title=f"{name} title"
        )

    def entry(image: str, cand: float, champ: float, picture: str) -> ImageDifference:
        return ImageDifference(
            image=image,
            candidate=ImageScore(score=cand, matched=1, missed=1, spurious=0),
            champion=ImageScore(score=champ, matched=2, missed=0, spurious=1),
            difference=cand - champ,
            picture=picture,
        )

    return Evidence(
        bucket="sentinel-runs",
        prefix=prefix,
        files=[
            file("PR_curve.png", "a1"),
            file("confusion_matrix_normalized.png", "a2"),
            file("worse-01.png", "a3"),
            file("better-01.png", "a4"),
        ],
        comparison=ImageComparison(
            conf=0.25,
            images=16,
            worse=3,
            better=2,
            unchanged=11,
            worst=[entry("syn_s1_000003.png", 0.2, 0.9, "worse-01.png")],
            best=[entry("syn_s1_000007.png", 0.95, 0.5, "better-01.png")],
        ),
    )


def download_links_result(model: str = "parts", version: int = 3) -> DownloadLinksResult:
    """Links to ``model.pt`` of ``version`` (in production)."""
    return DownloadLinksResult(
        model=model,
        version=version,
        production=True,
        files=[
            DownloadLink(
                name="model.pt",
                url=f"http://localhost:9000/sentinel-models/models/{model}/v{version}/model.pt",
                sha256="33" * 32,
                size=9,
            )
        ],
        expires_at=AT,
    )


def export_result(onnx: WeightsRef, pt: WeightsRef, passed: bool = True) -> ExportResult:
    """An export of ``pt`` to ``onnx`` whose parity check passed (or not)."""
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
    """A gate decision (reason text only says which way it went)."""
    return GateDecision(
        promote=promote,
        reason="promoted: example" if promote else "not promoted: example",
        candidate_map50_95=0.6,
    )


# ---------------------------------------------------------------------- pipeline results
def snapshot_ref(dataset: str) -> SnapshotRef:
    """The snapshot an assembly of ``dataset`` produced (24 images)."""
    return SNAPSHOT.model_copy(
        update={
            "dataset": dataset,
            "key": f"snapshots/{dataset}/" + "cd" * 32 + ".json",
            "sha256": "cd" * 32,
            "counts": {"train": 18, "val": 3, "test": 3},
        }
    )


def assemble_result(snapshot: SnapshotRef) -> AssembleResult:
    """A fresh assembly that produced ``snapshot``."""
    return AssembleResult(
        snapshot=snapshot,
        counts=dict(snapshot.counts),
        class_names=list(snapshot.class_names),
        report={"ok": sum(snapshot.counts.values())},
        unverified=0,
        reused=False,
    )


def train_result(
    workflow_id: str,
    *,
    epochs: int = 5,
    epochs_done: int | None = None,
    stopped_early: bool = False,
) -> TrainResult:
    """Training of ``epochs`` that ran ``epochs_done`` (all unless stopped early)."""
    done = epochs if epochs_done is None else epochs_done
    prefix = f"runs/{workflow_id}"
    return TrainResult(
        run_prefix=f"{prefix}/",
        bucket="sentinel-runs",
        best_key=f"{prefix}/best.pt",
        best_sha256="aa" * 32,
        last_key=f"{prefix}/last.pt",
        last_sha256="bb" * 32,
        results_csv_key=f"{prefix}/results.csv",
        epochs_requested=epochs,
        epochs_done=done,
        stopped_early=stopped_early,
        stop_reason="requested" if stopped_early else "completed",
        batch=16,
        device="cpu",
        metrics=TrainMetrics(map50=0.8, map50_95=0.6),
    )


def candidate_of(trained: TrainResult) -> WeightsRef:
    """The weights a retrain evaluates, exports and publishes: training's best."""
    return weights(trained.best_key, trained.best_sha256, trained.bucket)


def exported(candidate: WeightsRef, *, passed: bool = True) -> ExportResult:
    """The export of ``candidate`` next to it (``.../export/model.onnx``); parity as given."""
    folder = candidate.key.rsplit("/", 1)[0]
    onnx = weights(f"{folder}/export/model.onnx", "cc" * 32, candidate.bucket)
    return export_result(onnx, candidate, passed)


def publish_result(
    model: str,
    version: int = 1,
    *,
    promoted: bool = True,
    reason: str = "promoted: stub",
    production_version: int | None = None,
) -> PublishResult:
    """Version ``version`` of ``model`` registered; production moved to it if ``promoted``."""
    folder = f"models/{model}/v{version}"
    if production_version is None and promoted:
        production_version = version
    return PublishResult(
        model=model,
        version=version,
        promoted=promoted,
        reason=reason,
        created=True,
        production_version=production_version,
        latest_version=version,
        metadata_key=f"{folder}/metadata.json",
        artifacts={name: f"{folder}/{name}" for name in ARTIFACT_NAMES},
        bucket="sentinel-models",
    )


def published(request: PublishRequest, version: int = 1) -> PublishResult:
    """What a real publish of ``request`` returns: the gate's decision and reason, taken as is;
    production moves to ``version`` if promoted, else stays with the evaluated champion."""
    promoted = request.gate.promote
    return publish_result(
        request.model,
        version,
        promoted=promoted,
        reason=request.gate.reason,
        production_version=version if promoted else request.evaluation.champion_version,
    )


def notify_result(delivered: bool = True) -> NotifyResult:
    """What the webhook said."""
    return NotifyResult(delivered=delivered, detail="stub" if delivered else "no webhook")


def write_control_result(run_id: str) -> WriteControlResult:
    """Where a stop-early control object was written."""
    return WriteControlResult(bucket="sentinel-runs", key=f"runs/{run_id}/control/stop_early")


def count_new_result(new_verified: int, production_version: int | None = None) -> CountNewResult:
    """A controller count: ``new_verified`` images production was not trained on."""
    return CountNewResult(
        verified=new_verified + 10,
        new_verified=new_verified,
        production_version=production_version,
    )


# ---------------------------------------------------------------------- registry operations
def alias_event(version: int = 3, previous: int | None = 2, action: str = "promote") -> AliasEvent:
    """One entry of the production alias history."""
    return AliasEvent(
        seq=2,
        version=version,
        previous_version=previous,
        action=action,  # type: ignore[arg-type]
        reason="hotfix",
        request_id="cli-1",
        at=AT,
    )


def model_version(model: str = "parts", version: int = 3) -> ModelVersion:
    """The metadata of a registered version."""
    pt = weights(f"runs/retrain-{model}/weights/best.pt")
    return ModelVersion(
        model=model,
        version=version,
        parent_version=version - 1 if version > 1 else None,
        created_at=AT,
        workflow_id=f"retrain-{model}",
        run_id="run-1",
        snapshot=SNAPSHOT,
        class_names=SNAPSHOT.class_names,
        hyperparameters={
            "epochs": 30,
            "lr0": 0.01,
            "optimizer": "AdamW",
            "cos_lr": True,
            "x": None,
        },
        epochs=30,
        resumed_from_epoch=12,
        candidate=metrics(0.6),
        champion=metrics(0.5),
        champion_version=version - 1 if version > 1 else None,
        ci=DifferenceCI(estimate=0.1, low=0.02, high=0.2, level=0.95, resamples=100, seed=1),
        test_images=16,
        test_instances=31,
        gate=gate(),
        parity=parity(),
        onnx_opset=18,
        onnx_dynamic=False,
        imgsz=96,
        artifacts={
            "model.pt": ArtifactRecord(
                key=f"models/{model}/v{version}/model.pt", sha256="33" * 32, size=9
            )
        },
        source_weights=pt,
        versions={"torch": "2.4"},
    )


def version_summary(version: int = 3, *, production: bool = True) -> VersionSummary:
    """One row of a version listing."""
    return VersionSummary(
        version=version,
        created_at=AT,
        workflow_id="retrain-parts",
        map50_95=0.6,
        gate_promote=True,
        gate_reason="promoted",
        parity_passed=True,
        production=production,
    )


def list_versions_result(model: str = "parts") -> ListVersionsResult:
    """Two versions, the newer in production."""
    return ListVersionsResult(
        model=model,
        versions=[version_summary(3), version_summary(2, production=False)],
        production_version=3,
        latest_version=3,
        total=2,
    )


def show_version_result(model: str = "parts", version: int = 3) -> ShowVersionResult:
    """Version ``version`` with its metadata, in production and latest."""
    return ShowVersionResult(
        metadata=model_version(model, version),
        production=True,
        latest=True,
        report_key=f"models/{model}/v{version}/report.md",
    )


def promote_version_result(model: str = "parts", version: int = 3) -> PromoteVersionResult:
    """Production moved from ``version - 1`` to ``version``."""
    return PromoteVersionResult(
        model=model,
        version=version,
        previous_version=version - 1,
        changed=True,
        event=alias_event(version, version - 1),
    )


def rollback_result(model: str = "parts", from_version: int = 3) -> RollbackResult:
    """Production moved back from ``from_version`` to the one before."""
    return RollbackResult(
        model=model,
        from_version=from_version,
        to_version=from_version - 1,
        event=alias_event(from_version - 1, from_version, action="rollback"),
    )


def gc_result(*, dry_run: bool = False, checkpoints: int = 2) -> GcResult:
    """A sweep that found ``checkpoints`` checkpoints to delete and nothing else."""
    categories = {name: GcCategory() for name in CATEGORIES}
    categories["checkpoints"] = GcCategory(
        objects=checkpoints, bytes=checkpoints * 1024, examples=["sentinel-runs/runs/r/ck"]
    )
    return GcResult(dry_run=dry_run, categories=categories, runs_seen=3, models_seen=1)
