"""What a prediction run stores between its activities: the plan and the shards' predictions.

Plain JSON validated by these models on every read (never pickles); the writers of every
output format (:mod:`.formats`) and the ranking (:mod:`.ranking`) work on them. One
:class:`Prediction` holds whatever the model's task produces: a class and a confidence always,
an axis-aligned box (every task but classification), a polygon (segmentation), keypoints
(pose) or a rotated box (OBB), all in pixels of the original image.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Task = Literal["detect", "segment", "pose", "obb", "classify"]
SCHEMA_VERSION = 1


class Record(BaseModel):
    """Base of the stored records: immutable, strict about fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Prediction(Record):
    """One prediction (pixels of the original image)."""

    cls: int = Field(ge=0)
    conf: float = Field(ge=0, le=1)
    box: tuple[float, float, float, float] | None = Field(None, description="x1, y1, x2, y2")
    polygon: list[tuple[float, float]] | None = None
    keypoints: list[tuple[float, float, float]] | None = Field(
        None, description="x, y, visibility confidence (1.0 when the model has none)"
    )
    obb: tuple[float, float, float, float, float] | None = Field(
        None, description="centre x, centre y, width, height, rotation (radians, clockwise)"
    )


class ImagePredictions(Record):
    """The predictions of one image (and of the compared version, when one was named)."""

    key: str
    rel: str = Field(description="path relative to the source's root (YOLO label path)")
    width: int = 0
    height: int = 0
    predictions: list[Prediction] = Field(default_factory=list)
    compare: list[Prediction] | None = None
    error: str | None = Field(None, description="why the image could not be predicted")


class PlanImage(Record):
    """One image of a plan."""

    key: str
    etag: str
    rel: str


class StoredPlan(Record):
    """The images of a run, in order; shards are slices of :attr:`images`."""

    schema_version: int = SCHEMA_VERSION
    bucket: str
    root: str = Field(description="prefix the images' ``rel`` paths are relative to")
    images: list[PlanImage]


class ShardPart(Record):
    """One predicted batch of a shard not yet finished (the resume point after a kill)."""

    batch: int
    task: Task
    images: list[ImagePredictions]


class ShardOutput(Record):
    """A finished shard's predictions."""

    schema_version: int = SCHEMA_VERSION
    index: int
    digest: str
    task: Task
    class_names: list[str]
    model: str
    model_sha256: str
    compare: str | None = None
    images: list[ImagePredictions]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace: equal values give equal bytes (and equal digests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def dump(record: BaseModel) -> bytes:
    """The stored form of a record."""
    return canonical_json(record.model_dump(mode="json"))


def digest_of(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
