"""Contracts of the pretrained-weights catalog and of weights inspection.

Layout in the models bucket::

    weights/blobs/{sha256}.pt       uploaded weights, content-addressed (never rewritten)
    weights/catalog/{name}.json     a catalog entry (:class:`WeightsRecord`): name -> blob

The client uploads a file's bytes to its blob key (``sentinel weights add``, ``sentinel models
import``: large data travels by key, never in a payload) and hands the key and the digest it
computed to a workflow; everything else (reading what the file is, recording the entry) runs
in activities, which verify the bytes against that digest before loading them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from activities.contracts.bases import WeightsName
from activities.contracts.common import Contract
from activities.contracts.evaluation import WeightsRef

BLOB_PREFIX = "weights/blobs/"
CATALOG_PREFIX = "weights/catalog/"
TRAINABLE_TASK = "detect"
"""The task of the models ``ImportModelWorkflow`` registers, and of a retrain without a task
(retrains take every task of :mod:`activities.contracts.tasks`; imports are detect only)."""


def blob_key(sha256: str) -> str:
    """Where uploaded weights with this digest live (content-addressed)."""
    return f"{BLOB_PREFIX}{sha256}.pt"


def catalog_key(name: str) -> str:
    """The record of catalog entry ``name``."""
    return f"{CATALOG_PREFIX}{name}.json"


class InspectWeightsRequest(Contract):
    """Read what a ``.pt`` is (task, classes), after verifying its bytes."""

    weights: WeightsRef


class InspectWeightsResult(Contract):
    """What an Ultralytics checkpoint says about itself."""

    task: str = Field(description="Ultralytics task: detect, segment, classify, pose, obb")
    class_names: list[str] = Field(description="in class-id order")
    imgsz: int | None = Field(None, description="training image size recorded in the file")


class AddWeightsRequest(Contract):
    """Add uploaded weights to the catalog as ``name`` (idempotent for the same bytes)."""

    name: WeightsName
    weights: WeightsRef
    source_file: str = Field(max_length=255, description="the uploaded file's name")
    added_at: datetime


class WeightsRecord(Contract):
    """``weights/catalog/{name}.json``: a catalog entry and what its weights are."""

    name: WeightsName
    bucket: str
    key: str
    sha256: str
    size: int = Field(ge=0)
    task: str
    class_names: list[str]
    imgsz: int | None = None
    source_file: str
    added_at: datetime


class RecordWeightsRequest(Contract):
    """Write the catalog record of ``entry``, with what inspecting its weights found."""

    entry: AddWeightsRequest
    inspected: InspectWeightsResult


class AddWeightsResult(Contract):
    """The catalog entry, and whether this call created it (False: the same bytes were there)."""

    record: WeightsRecord
    created: bool


class ListWeightsRequest(Contract):
    """The catalog's entries, by name."""

    limit: int = Field(500, ge=1, le=10_000)


class ListWeightsResult(Contract):
    """Catalog entries sorted by name (at most ``limit``) and how many there are."""

    entries: list[WeightsRecord]
    total: int
    untrusted: dict[str, str] = Field(
        default_factory=dict,
        description="entries whose record failed its signature check, with the reason (never "
        "used as a base)",
    )
