"""Contract of the run-summary notification (webhook URL comes from settings, not here)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activities.contracts.common import Contract

Outcome = Literal["succeeded", "failed", "canceled", "awaiting_approval"]
"""How a retrain ended, or ``awaiting_approval``: a person must approve or reject it now."""


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
    report: str | None = Field(
        None,
        description="where the evidence is: s3://bucket/key of the version's report.md once "
        "published; while approval is awaited, s3://bucket/prefix of the evaluation's pictures",
    )
    report_command: str | None = Field(
        None, description="the sentinel command that writes the report and pictures to a folder"
    )


class NotifyResult(Contract):
    """Whether the webhook accepted the summary; a failure never fails the run."""

    delivered: bool
    detail: str
