"""Webhook notifications: delivered as JSON, and a broken webhook never raises."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.testing import ActivityEnvironment

from activities.contracts.notify import NotifyRequest
from activities.infra.settings import Settings
from activities.notify import NotifyActivities
from tests.helpers.webhook import WebhookReceiver
from workers.dev.stack import free_port

SUMMARY = NotifyRequest(
    model_name="shapes",
    workflow_id="retrain-shapes",
    outcome="succeeded",
    version=3,
    promoted=True,
    metrics={"map50_95": 0.61},
    reason="promoted: +0.02",
    duration_seconds=42.0,
)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_summary_is_posted_as_json(webhook: WebhookReceiver) -> None:
    activities = NotifyActivities(Settings(webhook_url=webhook.url))
    result = ActivityEnvironment().run(activities.notify, SUMMARY)
    assert result.delivered and result.detail == "HTTP 204"
    # Every field, as literals; fields added later (e.g. a report link) do not break this.
    expected = {
        "model_name": "shapes",
        "workflow_id": "retrain-shapes",
        "outcome": "succeeded",
        "version": 3,
        "promoted": True,
        "metrics": {"map50_95": 0.61},
        "reason": "promoted: +0.02",
        "duration_seconds": 42.0,
    }
    received = webhook.received
    assert len(received) == 1 and received[0].items() >= expected.items(), received


def test_unreachable_webhook_is_reported_not_raised() -> None:
    activities = NotifyActivities(Settings(webhook_url=f"http://127.0.0.1:{free_port()}/hook"))
    result = ActivityEnvironment().run(activities.notify, SUMMARY)
    assert not result.delivered and result.detail.startswith("webhook failed")


def test_no_webhook_configured() -> None:
    result = ActivityEnvironment().run(NotifyActivities(Settings(webhook_url=None)).notify, SUMMARY)
    assert not result.delivered and result.detail == "no webhook configured"


def test_approval_and_report_locations_are_posted(webhook: WebhookReceiver) -> None:
    url, received = webhook.url, webhook.received
    asking = SUMMARY.model_copy(
        update={
            "outcome": "awaiting_approval",
            "version": None,
            "report": "s3://sentinel-runs/runs/retrain-shapes/evaluation/r-1/",
        }
    )
    published = SUMMARY.model_copy(
        update={
            "report": "s3://sentinel-models/models/shapes/v3/report.md",
            "report_command": "sentinel models report shapes --version 3 --out shapes-v3",
        }
    )
    activities = NotifyActivities(Settings(webhook_url=url))
    for summary in (asking, published):
        assert ActivityEnvironment().run(activities.notify, summary).delivered
    assert [(r["outcome"], r["report"], r["report_command"]) for r in received] == [
        ("awaiting_approval", "s3://sentinel-runs/runs/retrain-shapes/evaluation/r-1/", None),
        (
            "succeeded",
            "s3://sentinel-models/models/shapes/v3/report.md",
            "sentinel models report shapes --version 3 --out shapes-v3",
        ),
    ]
