"""Contracts of batch prediction: PredictWorkflow, its activities, progress and result.

A registered version (number or alias) runs over the images of an S3 prefix, or of one split of
a snapshot. Image lists, per-image predictions and the outputs live in object storage; payloads
carry keys, digests, counts and the summary. Layout under the caller's ``out`` prefix (data
bucket): see :mod:`activities.predict.layout`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from activities.contracts.common import Contract, ModelName, ObjectKey, Sha256
from activities.contracts.dataset import SnapshotRef, SplitName

PredictFormat = Literal["coco", "yolo", "labelstudio"]
PREDICT_FORMATS: tuple[PredictFormat, ...] = ("coco", "yolo", "labelstudio")
PredictBackend = Literal["pytorch", "onnx"]
"""``pytorch``: ``model.pt`` on the GPU queue; ``onnx``: ``model.onnx`` (ONNX Runtime) on the
CPU queue."""
PredictStage = Literal[
    "queued", "planning", "predicting", "writing", "succeeded", "failed", "canceled"
]
MAX_SHARDS = 1000
"""Most shards one run may have: the plan and the shard results travel in payloads."""


def _check_folder(value: str) -> str:
    if not value.strip("/"):
        raise ValueError("must name a folder (e.g. 'predictions/today'), not the bucket root")
    return value.strip("/")


Folder = Annotated[ObjectKey, AfterValidator(_check_folder)]
"""A prefix naming a folder (never the bucket root), without leading or trailing '/'."""


class ImageSource(Contract):
    """The images to predict on: every image under ``prefix``, or one ``split`` of a snapshot."""

    prefix: Folder | None = None
    bucket: str | None = Field(None, description="bucket of prefix; default settings.data_bucket")
    snapshot: SnapshotRef | None = None
    split: SplitName | None = Field(None, description="with snapshot: one split (None: all)")

    @model_validator(mode="after")
    def _one_source(self) -> ImageSource:
        if (self.prefix is None) == (self.snapshot is None):
            raise ValueError("name exactly one image source: a prefix, or a snapshot (+ split)")
        if self.snapshot is None and self.split is not None:
            raise ValueError("split applies only to a snapshot source")
        if self.snapshot is not None and self.bucket is not None:
            raise ValueError("a snapshot names its own bucket: do not give bucket with it")
        return self


class PredictOptions(Contract):
    """How the model is run (the same for the compared version)."""

    conf: float = Field(0.25, gt=0, lt=1, description="confidence threshold")
    iou: float = Field(0.7, gt=0, le=1, description="NMS IoU")
    imgsz: int | None = Field(None, ge=32, le=8192, description="None: the version's imgsz")
    batch: int = Field(16, ge=1, le=512, description="images per inference (one heartbeat)")
    max_detections: int = Field(300, ge=1, le=10_000)
    device: str | None = Field(None, description="None: first CUDA device when present, else cpu")


class LabelStudioOptions(Contract):
    """How tasks name the labelling project's tags and the images (Label Studio JSON import)."""

    from_name: str = Field("label", min_length=1, description="labels control tag's name")
    keypoints_from_name: str = Field(
        "keypoints", min_length=1, description="KeyPointLabels tag's name (pose models)"
    )
    to_name: str = Field("image", min_length=1, description="object (Image) tag's name")
    image_field: str = Field(
        "image", min_length=1, description="the data field the Image tag reads ($image)"
    )
    image_url: str = Field(
        "s3://{bucket}/{key}",
        description="data.image of each task; {bucket} and {key} are filled in (s3:// URLs "
        "resolve through a Label Studio cloud storage connection)",
    )

    @model_validator(mode="after")
    def _names_the_image(self) -> LabelStudioOptions:
        if "{key}" not in self.image_url:
            raise ValueError("image_url must contain {key}")
        if self.image_field in ("key", "rank", "priority"):
            raise ValueError(f"image_field {self.image_field!r} is taken (key, rank, priority)")
        return self


class PredictRequest(Contract):
    """Run one registered version over a set of images and write its predictions to ``out``."""

    model: ModelName
    version: int | None = Field(None, ge=1, description="None: the version ``alias`` names")
    alias: Literal["production", "latest"] = "production"
    compare_version: int | None = Field(
        None, ge=1, description="a second version: images where the two disagree rank first"
    )
    source: ImageSource
    out: Folder = Field(description="output prefix in the data bucket")
    formats: list[PredictFormat] = Field(default_factory=lambda: list(PREDICT_FORMATS))
    backend: PredictBackend = "pytorch"
    options: PredictOptions = Field(default_factory=PredictOptions)
    label_studio: LabelStudioOptions = Field(default_factory=LabelStudioOptions)
    shard_size: int | None = Field(
        None, ge=1, le=100_000, description="images per shard; None: SENTINEL_PREDICT_SHARD_SIZE"
    )
    parallel_shards: int = Field(4, ge=1, le=64, description="shards predicted at once")
    shard_heartbeat_timeout_seconds: float = Field(60.0, ge=5, le=3600)
    cpu_task_queue: str = "sentinel-cpu"
    gpu_task_queue: str = "sentinel-gpu"

    @model_validator(mode="after")
    def _formats(self) -> PredictRequest:
        if not self.formats:
            raise ValueError(f"formats must name at least one of {', '.join(PREDICT_FORMATS)}")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"formats has duplicates: {self.formats}")
        if self.compare_version is not None and self.compare_version == self.version:
            raise ValueError("compare_version must differ from version")
        return self

    @property
    def version_label(self) -> str:
        """``v3`` or the alias, for messages."""
        return f"v{self.version}" if self.version is not None else self.alias


class StoredObject(Contract):
    """An object we wrote and the sha256 it must have when read back."""

    bucket: str
    key: ObjectKey
    sha256: Sha256


class ResolvedModel(Contract):
    """A version resolved through the registry: the artifact to run and its recorded digest."""

    model: ModelName
    version: int = Field(ge=1)
    artifact: Literal["model.pt", "model.onnx"]
    weights: StoredObject = Field(description="verified against metadata.json before loading")
    class_names: list[str]
    imgsz: int

    @property
    def label(self) -> str:
        """``name v3``: Label Studio's ``model_version`` and the summary's naming."""
        return f"{self.model} v{self.version}"


class ShardRef(Contract):
    """One shard of a plan: its images are ``plan.images[start:start + images]``."""

    index: int = Field(ge=0)
    start: int = Field(ge=0)
    images: int = Field(ge=1)
    digest: Sha256 = Field(description="content address of the shard's output")


class PredictPlan(Contract):
    """What the plan activity decided: models, images (stored), shards."""

    plan: StoredObject = Field(description="the image list (keys, etags, relative paths)")
    model: ResolvedModel
    compare: ResolvedModel | None = None
    images: int
    imgsz: int
    shards: list[ShardRef]
    out_bucket: str


class ShardRequest(Contract):
    """Predict one shard (the activity reads its images from the stored plan)."""

    plan: StoredObject
    shard: ShardRef
    model: ResolvedModel
    compare: ResolvedModel | None = None
    imgsz: int
    options: PredictOptions
    formats: list[PredictFormat]
    out_bucket: str
    out: Folder


class ShardResult(Contract):
    """A predicted shard: its stored output and what this attempt did."""

    index: int
    output: StoredObject
    images: int
    unreadable: int = 0
    predictions: int
    predicted: int = Field(description="images inferred by the attempt that finished the shard")
    resumed: int = Field(description="images taken from batches an earlier attempt stored")
    seconds: float = Field(description="wall time of the finishing attempt")


class FinishRequest(Contract):
    """Merge the predicted shards into the requested outputs, the ranking and the manifest."""

    request: PredictRequest
    plan: PredictPlan
    shards: list[ShardResult]
    workflow_id: str
    started_at: datetime = Field(description="the workflow's start: throughput counts from it")
    stopped: bool = Field(False, description="stop_early: shards not predicted are left out")


class OutputShape(Contract):
    """One output of a run: where, how many files and records, how many bytes."""

    key: str = Field(description="object key, or the folder of a many-file output")
    files: int
    records: int = Field(description="predictions, tasks, images or rows, as the output holds")
    bytes: int
    sha256: str | None = Field(None, description="of a single-file output")


class PredictSummary(Contract):
    """What a run predicted, how fast, and what it wrote."""

    images: int
    unreadable: int
    predictions: int
    predictions_per_class: dict[str, int]
    mean_confidence: float | None = Field(description="None when nothing was predicted")
    seconds: float = Field(description="workflow start to outputs written")
    images_per_second: float
    task: str = Field(description="detect, segment, pose, obb or classify")
    outputs: dict[str, OutputShape]


class PredictResult(Contract):
    """How a prediction run ended (a CANCELED or FAILED workflow has no result)."""

    model: ModelName
    version: int
    compare_version: int | None = None
    out_bucket: str
    out: str
    manifest_key: str
    summary: PredictSummary
    shards: int
    shards_predicted: int
    stopped_early: bool
    top_ranked: list[str] = Field(description="image keys a labeller should check first (<= 10)")


class PredictProgress(Contract):
    """Answer of the ``progress`` query of PredictWorkflow."""

    model: str
    version: int | None = None
    stage: PredictStage
    shards: int = 0
    shards_done: int = 0
    shards_running: int = 0
    images: int = 0
    images_done: int = 0
    elapsed_seconds: float = 0.0
    images_per_second: float | None = None
    stop_early_requested: bool = False
    error: str | None = None
