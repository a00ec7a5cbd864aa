"""Contracts of the retraining controller (the scheduled "enough new data?" check)."""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract, ModelName
from activities.contracts.dataset import AssembleRequest
from activities.contracts.retrain import RetrainRequest


class ControllerConfig(Contract):
    """What the schedule runs: retrain ``request`` once ``threshold`` new images are verified."""

    request: RetrainRequest
    threshold: int = Field(100, ge=1, description="new verified images that trigger a retrain")


class CountNewRequest(Contract):
    """Count verified source images that the production model's snapshot does not contain."""

    model: ModelName
    dataset: AssembleRequest


class CountNewResult(Contract):
    """Counts only; no keys."""

    verified: int = Field(description="verified images in the source now")
    new_verified: int = Field(description="verified images not in production's snapshot")
    production_version: int | None = None


class CheckResult(Contract):
    """What one scheduled check decided."""

    model: str
    new_verified: int
    threshold: int
    started: bool
    workflow_id: str | None = None
    reason: str
