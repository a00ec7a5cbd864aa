"""Contracts of the evaluate activity: candidate vs the production champion on one test split.

Weights travel by key and sha256 (:class:`WeightsRef`); the result carries only summary
numbers (overall metrics, per-class AP, the bootstrap intervals) and the evidence's keys and
digests with a capped, ranked per-image comparison (:mod:`activities.contracts.evidence`).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from activities.contracts.common import Contract, ModelName, ObjectKey, Sha256, accepts_flat_options
from activities.contracts.dataset import SnapshotRef
from activities.contracts.evidence import Evidence
from activities.contracts.tasks import PRIMARY_METRIC, Task


class WeightsRef(Contract):
    """An object in storage and the sha256 it must have (checked on every download)."""

    bucket: str = Field(min_length=3, max_length=63)
    key: ObjectKey
    sha256: Sha256


class ModelMetrics(Contract):
    """Metrics of one model on one split (Ultralytics definitions).

    ``precision``, ``recall``, ``map50`` and ``map50_95`` are the box metrics (for ``obb`` the
    rotated boxes'; 0 for ``classify``, which has no boxes). ``scores`` holds every metric of
    the task by name (:mod:`activities.contracts.tasks`; empty for detect, whose only metrics
    are the box ones), and the per-class dicts the per-class score of the task's primary metric
    (AP of boxes, masks or keypoints; accuracy of the class's images for classify).
    """

    task: Task = "detect"
    precision: float
    recall: float
    map50: float
    map50_95: float
    per_class_ap50: dict[str, float] = Field(
        default_factory=dict, description="AP at IoU 0.5 of each class with test instances"
    )
    per_class_ap50_95: dict[str, float] = Field(
        default_factory=dict, description="AP at IoU 0.5:0.95 of each class with test instances"
    )
    scores: dict[str, float] = Field(
        default_factory=dict, description="every metric of the task by name (empty: detect)"
    )

    def score(self, metric: str | None = None) -> float | None:
        """The value of ``metric`` (None: the task's primary metric); None when not measured."""
        name = metric or PRIMARY_METRIC[self.task]
        if name in self.scores:
            return self.scores[name]
        if self.task != "classify":
            return {"box_map50_95": self.map50_95, "box_map50": self.map50}.get(name)
        return None


class DifferenceCI(Contract):
    """Percentile bootstrap interval of ``candidate mAP50-95 - champion mAP50-95``.

    Both models are scored on the same resample of test images in each round.
    """

    estimate: float = Field(description="difference on the full test split")
    low: float
    high: float
    level: float = Field(description="e.g. 0.95")
    resamples: int
    seed: int

    @model_validator(mode="after")
    def _ordered(self) -> DifferenceCI:
        if self.low > self.high:
            raise ValueError(f"CI low {self.low} > high {self.high}")
        return self


class EvaluationOptions(Contract):
    """How candidate and champion are compared (the same for both).

    Part of :class:`~activities.contracts.retrain.RetrainRequest` (``evaluation``) and handed
    to the evaluate activity as it is (``EvaluateRequest.options``).
    """

    conf: float = Field(0.001, gt=0, lt=1, description="Ultralytics val default")
    iou: float = Field(0.7, gt=0, le=1, description="NMS IoU, Ultralytics val default")
    bootstrap_resamples: int = Field(1000, ge=0, le=100_000, description="0: no interval")
    bootstrap_seed: int = Field(0, ge=0)
    ci_level: float = Field(0.95, gt=0, lt=1)
    skip_comparison_on_class_mismatch: bool = Field(
        False,
        description="a champion with another class list is not compared (gate on the floor "
        "only) instead of failing the evaluation",
    )
    evidence: bool = Field(
        True,
        description="store the candidate's plots and the per-image comparison with the "
        "champion (pictures) for the version's report",
    )
    evidence_images: int = Field(
        6,
        ge=0,
        le=50,
        description="test images pictured where the candidate does worse (and "
        "as many where it does better)",
    )
    evidence_conf: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="confidence from which detections count in the per-image "
        "comparison and are drawn (Ultralytics predict default)",
    )


class EvaluateRequest(Contract):
    """Evaluate ``candidate`` and the production version of ``model`` on the test split.

    The champion is resolved by the activity from the registry's production alias, so a
    workflow never names (or caches) it. Same split, imgsz, conf, iou and library versions for
    both models.
    """

    model: ModelName
    snapshot: SnapshotRef
    candidate: WeightsRef
    imgsz: int = Field(640, ge=32, le=8192)
    batch: int = Field(16, ge=1, le=1024)
    device: str | None = Field(None, description="None: first CUDA device when present, else cpu")
    options: EvaluationOptions = Field(default_factory=EvaluationOptions)

    # Activity tasks scheduled by workflows older than ``options`` carry its fields flat.
    _flat_options = accepts_flat_options()


class EvaluateResult(Contract):
    """Candidate and champion metrics on the same test images, and the interval."""

    model: ModelName
    split: str = "test"
    class_names: list[str]
    images: int
    instances: int
    instances_per_class: dict[str, int] = Field(default_factory=dict)
    candidate: ModelMetrics
    champion: ModelMetrics | None = None
    champion_version: int | None = Field(
        None, description="production version when evaluated (even if comparison was skipped)"
    )
    ci: DifferenceCI | None = None
    per_class_ci: dict[str, DifferenceCI] = Field(
        default_factory=dict,
        description="per class: interval of candidate AP50-95 - champion AP50-95 (same paired "
        "resamples as ``ci``); classes without test instances are absent",
    )
    comparison_note: str | None = Field(None, description="why there is no comparison")
    imgsz: int
    conf: float
    iou: float
    versions: dict[str, str] = Field(default_factory=dict, description="ultralytics, torch, ...")
    evidence: Evidence | None = Field(
        None, description="plots and per-image comparison in the runs bucket (None: not made)"
    )
