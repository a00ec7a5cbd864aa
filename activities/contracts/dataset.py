"""Contracts of dataset assembly: request, result, and the reference that travels onward.

The manifest itself lives in object storage (``snapshots/{dataset}/{sha256}.json``); only
:class:`SnapshotRef`, counts and a report summary travel through workflow payloads.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from activities.contracts.common import Contract, ObjectKey
from activities.contracts.tasks import Task

DatasetFormat = Literal["yolo", "coco", "roboflow"]
BadLabelPolicy = Literal["skip_image", "drop_lines"]
SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")

_DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _check_dataset_name(value: str) -> str:
    if not _DATASET_NAME.match(value) or ".." in value:
        raise ValueError(
            f"invalid dataset name {value!r}: use 1-63 lowercase letters, digits, '-', '_' or "
            "'.', starting with a letter or digit"
        )
    return value


DatasetName = Annotated[str, AfterValidator(_check_dataset_name)]
"""A dataset's name: one safe path segment (used in ``snapshots/{dataset}/`` and cache dirs)."""


def _check_prefix(value: str) -> str:
    if not value.strip("/"):
        raise ValueError("prefix must name a folder (e.g. 'datasets/parts'), not the bucket root")
    return value


class SplitRatios(Contract):
    """Fractions of images per split; they must add up to 1."""

    train: float = Field(0.8, ge=0, le=1)
    val: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitRatios:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must add up to 1, got {total:g}")
        return self


class MinCounts(Contract):
    """Minimum images per split after validation; below it the assembly fails."""

    train: int = Field(1, ge=0)
    val: int = Field(1, ge=0)
    test: int = Field(1, ge=0)


class SnapshotRef(Contract):
    """Where a dataset snapshot manifest lives and what it hashes to."""

    dataset: str
    bucket: str
    key: str
    sha256: str
    class_names: list[str]
    counts: dict[str, int] = Field(default_factory=dict, description="images per split")
    task: Task = Field("detect", description="what the labels annotate (contracts/tasks.py)")
    kpt_shape: list[int] | None = Field(
        None, description="pose: keypoints per object and values per keypoint (2 or 3)"
    )


class AssembleRequest(Contract):
    """Assemble a validated, content-hashed snapshot of ``bucket/prefix``.

    Keys named here (``verified_key``, ``test_prefix``) follow these rules: ``verified_key`` is
    a full object key in ``bucket``; ``test_prefix`` is relative to ``prefix`` (e.g.
    ``"images/golden/"``), and every image under it goes to the test split whatever the ratios.
    """

    dataset: DatasetName
    prefix: Annotated[ObjectKey, AfterValidator(_check_prefix)]
    format: DatasetFormat = "yolo"
    task: Task = Field(
        "detect",
        description="what the labels annotate: detect (boxes), segment (polygons), pose "
        "(boxes with keypoints, kpt_shape and flip_idx from data.yaml), obb (four corners), "
        "classify (class folders)",
    )
    bucket: str | None = Field(None, description="source bucket; default settings.data_bucket")
    class_names: list[str] | None = Field(
        None, description="class names in id order; default data.yaml or COCO categories"
    )
    verified_key: ObjectKey | None = Field(
        None, description="verified image list (JSON lines); default {prefix}/verified.jsonl"
    )
    split_ratios: SplitRatios = Field(default_factory=SplitRatios)
    test_prefix: ObjectKey | None = Field(None, description="pinned golden test set, relative")
    min_counts: MinCounts = Field(default_factory=MinCounts)
    max_examples: int = Field(5, ge=0, le=100, description="report examples kept per kind")
    bad_labels: BadLabelPolicy = Field(
        "skip_image",
        description="an image with an invalid annotation (an object left unlabelled): "
        "'skip_image' leaves it out of the snapshot (default); 'drop_lines' keeps its valid "
        "boxes (the unlabelled object is then trained on as background)",
    )

    @model_validator(mode="after")
    def _check_class_names(self) -> AssembleRequest:
        if self.class_names is not None:
            if not self.class_names or any(not n.strip() for n in self.class_names):
                raise ValueError("class_names must be non-empty strings when given")
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError(f"class_names has duplicates: {self.class_names}")
        return self


class AssembleResult(Contract):
    """What an assembly produced: a reference and small summaries, never the manifest."""

    snapshot: SnapshotRef
    counts: dict[str, int] = Field(description="images per split")
    class_names: list[str]
    report: dict[str, int] = Field(description="validation findings per kind")
    unverified: int = Field(description="images left out because they are not verified")
    reused: bool = Field(description="the same snapshot existed already (nothing written)")
