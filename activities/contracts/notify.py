"""Contract of the run-summary notification (webhook URL comes from settings, not here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activities.contracts.common import Contract

Outcome = Literal["succeeded", "failed", "canceled"]
"""How a retrain ended."""


class NotifyRequest(Contract):
    """A short JSON-able summary of how a retrain ended."""

    model_name: str
    workflow_id: str
    outcome: Outcome
    version: int | None = None
    promoted: bool = False
    metrics: dict[str, float] = Field(default_factory=dict)
    reason: str = ""
    duration_seconds: float = 0.0


class NotifyResult(Contract):
    """Whether the webhook accepted the summary; a failure never fails the run."""

    delivered: bool
    detail: str
