"""Contracts of notifications: the notify activity's request, and the typed bodies of webhook
deliveries (the webhook URL and its signing key come from settings, never from here)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from activities.contracts.common import Contract
from activities.contracts.registry import AliasAction

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


class WebhookHeader(Contract):
    """What every webhook delivery carries besides its event's fields (the same values are in
    the ``Sentinel-Event``/``-Delivery``/``-Timestamp`` headers the signature covers)."""

    delivery_id: str = Field(description="the same on every retry of one delivery")
    timestamp: int = Field(description="Unix seconds when this attempt was sent")


class RunNotice(WebhookHeader, NotifyRequest):
    """Body of a run event: ``succeeded``, ``failed``, ``canceled`` or ``awaiting_approval``."""

    event: Outcome
    approve_command: str | None = Field(
        None, description="awaiting_approval: the exact command that approves the candidate"
    )
    reject_command: str | None = Field(
        None, description="awaiting_approval: the exact command that rejects it"
    )


ProductionEvent = Literal["promoted", "rolled_back"]
"""Production moved: to a newer version (``promoted``), or back to an older one."""


class ProductionNotice(WebhookHeader):
    """Body of a production event, sent whichever path moved the alias (a retrain's publish,
    ``sentinel models promote``, ``sentinel models rollback``)."""

    event: ProductionEvent
    model_name: str
    version: int = Field(description="the production version now")
    previous_version: int | None
    action: AliasAction = Field(description="the alias history's action that moved it")
    reason: str
    request_id: str
    at: datetime = Field(description="when the move was requested")
    seq: int = Field(description="the move's number in the model's alias history")
