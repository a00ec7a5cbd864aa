"""Contracts of the training stage: hyperparameters, base model, request, result, control.

Weights and the full ``results.csv`` live in object storage under ``runs/{workflow_id}/``; only
keys, digests, final metrics and a capped per-epoch summary travel through payloads.

``Hyperparameters.extra`` is checked here for shape only (JSON values, no keys we own); its
names and value types are validated against Ultralytics by the training activity before any
training starts (contracts must stay importable without Ultralytics).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, JsonValue, field_validator, model_validator

# The base kinds live in bases.py (with their text form); re-exported where code imported them.
from activities.contracts.bases import ArchitectureBase as ArchitectureBase
from activities.contracts.bases import BaseModelSpec as BaseModelSpec
from activities.contracts.bases import BaseRecord
from activities.contracts.bases import CatalogBase as CatalogBase
from activities.contracts.bases import RegistryBase as RegistryBase
from activities.contracts.bases import S3Base as S3Base
from activities.contracts.common import Contract, ModelName, ObjectKey
from activities.contracts.dataset import SnapshotRef

Optimizer = Literal[
    "auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "MuSGD"
]  # fmt: skip
"""The optimizers Ultralytics 8.4 accepts (``auto`` picks one from the schedule length)."""

OWNED_TRAIN_ARGS = frozenset(
    {
        # set by the activity from the request / attempt, never by callers
        "model", "data", "mode", "task", "resume", "project", "name", "exist_ok", "save_dir",
        "save", "pretrained", "cfg",
        # dedicated Hyperparameters fields
        "epochs", "imgsz", "batch", "lr0", "patience", "seed", "optimizer", "device", "workers",
        # 'time' replaces 'epochs' by a wall-clock budget: incompatible with exact-epoch resume
        "time",
    }
)  # fmt: skip
"""Ultralytics train arguments that ``Hyperparameters.extra`` may not set."""

_DEVICE = re.compile(r"^(cpu|\d+(,\d+)*)$")


class Hyperparameters(Contract):
    """Training hyperparameters; ``extra`` passes further Ultralytics train arguments through."""

    epochs: int = Field(100, ge=1, le=10_000)
    imgsz: int = Field(640, ge=32, le=8192, description="multiple of 32")
    batch: int = Field(16, ge=1, le=4096, description="images per batch (halved on CUDA OOM)")
    lr0: float = Field(0.01, gt=0, le=10)
    patience: int = Field(100, ge=0, description="epochs without improvement before stopping")
    seed: int = Field(0, ge=0)
    optimizer: Optimizer = "auto"
    device: str | None = Field(
        None, description="None: '0' when CUDA is available, else 'cpu'; or 'cpu', '0' (one GPU)"
    )
    workers: int = Field(0, ge=0, le=64, description="dataloader worker processes")
    extra: dict[str, JsonValue] = Field(
        default_factory=dict, description="further Ultralytics train arguments (validated)"
    )

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"imgsz must be a multiple of 32, got {value}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is not None and not _DEVICE.match(value):
            raise ValueError(f"device must be None, 'cpu', or one GPU index like '0': {value!r}")
        if value is not None and "," in value:
            # Ultralytics' DDP re-launches training in processes without our heartbeats,
            # checkpoint uploads and cancel: refused here and again by the train activity.
            raise ValueError(
                f"several GPUs (device={value!r}) are not supported: training runs on one GPU "
                f"(DDP processes would run without heartbeats, checkpoints or cancel); use "
                f"device={value.split(',')[0]!r} or leave device unset"
            )
        return value

    @field_validator("extra")
    @classmethod
    def _no_owned_keys(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        owned = sorted(set(value) & OWNED_TRAIN_ARGS)
        if owned:
            raise ValueError(
                f"extra may not set {', '.join(owned)}: these are set by the request or the "
                "activity (use the dedicated Hyperparameters fields where they exist)"
            )
        return value


class TrainRequest(Contract):
    """Train ``model_name`` on a dataset snapshot.

    The run prefix is ``runs/{workflow_id}/`` in the runs bucket; the activity takes the workflow
    id from its own context, so retries and other workers land on the same prefix.
    """

    snapshot: SnapshotRef
    model_name: ModelName
    base: BaseModelSpec | None = Field(
        None, description="None: the worker's default (SENTINEL_DEFAULT_BASE, else yolov8n.yaml)"
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    heartbeat_timeout_seconds: float = Field(
        60.0, ge=1, le=3600, description="what the workflow should set; covers caching and upload"
    )
    min_batch: int = Field(1, ge=1, description="floor for batch halving on CUDA out of memory")

    @model_validator(mode="after")
    def _floor_below_batch(self) -> TrainRequest:
        if self.min_batch > self.hyperparameters.batch:
            raise ValueError(
                f"min_batch ({self.min_batch}) exceeds hyperparameters.batch "
                f"({self.hyperparameters.batch})"
            )
        return self


class TrainMetrics(Contract):
    """Validation metrics of the returned best weights, and the last training losses."""

    map50: float = 0.0
    map50_95: float = 0.0
    precision: float = 0.0
    recall: float = 0.0
    losses: dict[str, float] = Field(default_factory=dict, description="train/ and val/ losses")


class EpochSummary(Contract):
    """One row of the per-epoch history (1-based epoch)."""

    epoch: int
    map50: float = 0.0
    map50_95: float = 0.0
    box_loss: float | None = None
    cls_loss: float | None = None


StopReason = Literal["completed", "requested", "patience"]


class TrainResult(Contract):
    """Where the weights are, what they score, and how the run went."""

    run_prefix: ObjectKey
    bucket: str
    best_key: ObjectKey
    best_sha256: str
    last_key: ObjectKey
    last_sha256: str
    results_csv_key: ObjectKey
    epochs_requested: int
    epochs_done: int
    resumed_from_epoch: int | None = Field(
        None, description="epochs already done in the checkpoint this attempt resumed from"
    )
    stopped_early: bool = False
    stop_reason: StopReason = "completed"
    batch: int = Field(description="batch size actually used (after any OOM halving)")
    device: str
    attempt: int = 1
    metrics: TrainMetrics
    history: list[EpochSummary] = Field(
        default_factory=list, description="per-epoch summary, at most HISTORY_CAP rows"
    )
    base: BaseRecord | None = Field(
        None, description="the base this run started from (None in results of older workers)"
    )
    base_downloaded: bool = Field(
        False, description="the base's bytes were downloaded (False: this worker's cache)"
    )


HISTORY_CAP = 50
"""Most rows of :attr:`TrainResult.history` (evenly thinned, last epoch always kept)."""

ControlName = Literal["stop_early"]


class WriteControlRequest(Contract):
    """Ask a running training (by workflow id) to do something at its next check."""

    run_id: ObjectKey = Field(min_length=1, max_length=255, description="training workflow id")
    control: ControlName = "stop_early"
    reason: str = Field("", max_length=500)


class WriteControlResult(Contract):
    """Where the control object was written."""

    bucket: str
    key: ObjectKey
