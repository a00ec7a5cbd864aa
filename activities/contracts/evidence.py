"""Contracts of the evidence stored with each version: plots and the per-image comparison.

The evaluate activity writes the pictures to the runs bucket and returns :class:`Evidence`:
their keys and sha256 digests (so publish verifies what it copies into the registry) and the
ranked per-image comparison with the champion (a few numbers per image, never the pictures).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from activities.contracts.common import Contract, ObjectKey, Sha256

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def _check_file_name(value: str) -> str:
    if not _FILE_NAME.match(value) or ".." in value:
        raise ValueError(
            f"invalid evidence file name {value!r}: one path segment of letters, digits, "
            "'.', '_' or '-'"
        )
    return value


EvidenceFileName = Annotated[str, AfterValidator(_check_file_name)]
"""A flat file name (no folders): the same name in the runs bucket, the registry and on disk."""


class EvidenceFile(Contract):
    """One picture of the evidence, where it is stored and the digest it must have."""

    name: EvidenceFileName
    key: ObjectKey
    sha256: Sha256
    size: int = Field(ge=0)
    title: str = Field(max_length=200, description="what the picture shows, for the report")


class ImageScore(Contract):
    """How well one model did on one test image (detections at or above the comparison conf).

    ``score``: F1 of the detections against the ground truth averaged over the IoU thresholds
    0.50:0.95 (1.0 for an image without objects and without detections).
    """

    score: float = Field(ge=0, le=1)
    matched: int = Field(ge=0, description="detections matching an object at IoU 0.5")
    missed: int = Field(ge=0, description="objects no detection matched at IoU 0.5")
    spurious: int = Field(ge=0, description="detections matching no object at IoU 0.5")


class ImageDifference(Contract):
    """One test image: both models' scores and the side-by-side picture (when drawn)."""

    image: str = Field(max_length=300, description="file name of the test image")
    candidate: ImageScore
    champion: ImageScore
    difference: float = Field(description="candidate score - champion score")
    picture: EvidenceFileName | None = Field(
        None, description="candidate | champion | ground truth picture (an EvidenceFile name)"
    )


class ImageComparison(Contract):
    """Candidate vs champion image by image on the test split, ranked both ways."""

    conf: float = Field(gt=0, lt=1, description="detections below this confidence are ignored")
    images: int = Field(ge=0)
    worse: int = Field(ge=0, description="images where the candidate scores lower")
    better: int = Field(ge=0, description="images where the candidate scores higher")
    unchanged: int = Field(ge=0)
    worst: list[ImageDifference] = Field(
        default_factory=list, description="where the candidate does worse, largest loss first"
    )
    best: list[ImageDifference] = Field(
        default_factory=list, description="where the candidate does better, largest gain first"
    )


class Evidence(Contract):
    """The pictures of one evaluation (runs bucket) and the per-image comparison."""

    bucket: str = Field(min_length=3, max_length=63)
    prefix: ObjectKey
    files: list[EvidenceFile] = Field(default_factory=list)
    comparison: ImageComparison | None = Field(None, description="None without a champion")
