"""Contracts of the read-only looks the CLI takes: a dataset's validation, a run's training log.

Both run as short workflows (:mod:`workflows.inspection`) so that callers need only Temporal
access, never S3 credentials. Neither writes anything: validation stores no snapshot and
touches no registry.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from activities.contracts.common import Contract
from activities.contracts.dataset import DatasetFormat

_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def _check_workflow_id(value: str) -> str:
    if not _WORKFLOW_ID.match(value) or ".." in value:
        raise ValueError(
            f"invalid workflow id {value!r}: letters, digits, '.', '_' and '-' only "
            "(it names the run's folder runs/{workflow_id}/)"
        )
    return value


RunId = Annotated[str, AfterValidator(_check_workflow_id)]
"""A training run's workflow id, safe as one path segment of ``runs/{workflow_id}/``."""

MAX_LOG_BYTES = 1024 * 1024
"""Largest slice of a log one request returns (payloads stay well under Temporal's limits)."""


class DatasetValidation(Contract):
    """What an assembly would make of a prefix, without storing anything.

    ``can_train`` is False, with ``problem`` saying why, when a retrain of this data would fail
    at assembly (empty prefix, no verified image, a split below its minimum, no labelled box).
    """

    dataset: str
    bucket: str
    prefix: str
    format: DatasetFormat
    listed: int = Field(0, description="objects under the prefix")
    images: int = Field(0, description="images found by the layout")
    unverified: int = Field(0, description="images left out because they are not verified")
    usable: int = Field(0, description="images that passed validation")
    class_names: list[str] = Field(default_factory=list)
    findings: dict[str, int] = Field(default_factory=dict, description="count per kind")
    examples: dict[str, list[str]] = Field(default_factory=dict, description="per kind")
    split_counts: dict[str, int] = Field(default_factory=dict, description="images per split")
    class_counts: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="split -> class name -> boxes"
    )
    can_train: bool
    problem: str | None = None


class TrainingLogRequest(Contract):
    """The training log of one attempt of a run (default: its latest attempt)."""

    workflow_id: RunId
    attempt: int | None = Field(None, ge=1, description="None: the latest attempt")
    max_bytes: int = Field(256 * 1024, ge=1, le=MAX_LOG_BYTES, description="tail kept")


class TrainingLogResult(Contract):
    """The log's tail and which attempts have one."""

    workflow_id: str
    attempts: list[int] = Field(description="attempts with a stored log, ascending")
    attempt: int | None = Field(description="the attempt shown; None when there is no log")
    key: str | None = Field(None, description="object key of the log in the runs bucket")
    size: int = Field(0, description="bytes of the whole log")
    truncated: bool = Field(False, description="only the last max_bytes are in text")
    text: str = ""
