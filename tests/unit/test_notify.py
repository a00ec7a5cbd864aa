"""Webhook notifications: signed JSON events, a stable delivery id, failures raised for
Temporal's retries (the workflow's outcome never depends on them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts.notify import NotifyRequest
from activities.infra.settings import Settings
from activities.notify import NotifyActivities
from tests.helpers.webhook import WebhookReceiver, signature_ok, webhook_config
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


def _activities(folder: Path, url: str) -> NotifyActivities:
    return NotifyActivities(Settings(**webhook_config(folder, url)))


def test_summary_is_posted_as_signed_json(webhook: WebhookReceiver, tmp_path: Path) -> None:
    result = ActivityEnvironment().run(_activities(tmp_path, webhook.url).notify, SUMMARY)
    assert result.delivered and result.detail.startswith("HTTP 204, delivery ")
    # Every field, as literals; fields added later (e.g. a report link) do not break this.
    expected = {
        "event": "succeeded",
        "model_name": "shapes",
        "workflow_id": "retrain-shapes",
        "outcome": "succeeded",
        "version": 3,
        "promoted": True,
        "metrics": {"map50_95": 0.61},
        "reason": "promoted: +0.02",
        "duration_seconds": 42.0,
        "approve_command": None,
    }
    (delivery,) = webhook.deliveries
    body = delivery.json()
    assert body.items() >= expected.items(), body
    assert signature_ok(delivery)
    assert delivery.headers["sentinel-event"] == "succeeded"
    assert delivery.headers["sentinel-delivery"] == body["delivery_id"]
    assert delivery.headers["sentinel-timestamp"] == str(body["timestamp"])
    assert result.detail.endswith(body["delivery_id"])


def test_unreachable_webhook_raises_a_retryable_error_without_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/T0KEN-in-the-path"
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(_activities(tmp_path, url).notify, SUMMARY)
    assert caught.value.type == "WebhookDeliveryError" and not caught.value.non_retryable
    assert caught.value.message == "webhook delivery failed: Connection refused"


def test_no_webhook_configured() -> None:
    result = ActivityEnvironment().run(NotifyActivities(Settings(webhook_url=None)).notify, SUMMARY)
    assert not result.delivered and result.detail == "no webhook configured"


def test_a_retry_keeps_the_delivery_id(tmp_path: Path) -> None:
    """A receiver down for one attempt: Temporal's next attempt sends the same id."""
    with WebhookReceiver(fail_first=1) as hook:
        activities = _activities(tmp_path, hook.url)
        env = ActivityEnvironment()
        with pytest.raises(ApplicationError, match=r"webhook answered HTTP 503$"):
            env.run(activities.notify, SUMMARY)
        env.info = dataclasses.replace(env.info, attempt=2)
        assert env.run(activities.notify, SUMMARY).delivered
    first, second = hook.deliveries
    assert (first.status, second.status) == (503, 204)
    assert first.headers["sentinel-delivery"] == second.headers["sentinel-delivery"]
    assert signature_ok(first) and signature_ok(second)


def test_approval_and_report_locations_are_posted(webhook: WebhookReceiver, tmp_path: Path) -> None:
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
    activities = _activities(tmp_path, webhook.url)
    for summary in (asking, published):
        assert ActivityEnvironment().run(activities.notify, summary).delivered
    assert [
        (r["event"], r["report"], r["report_command"], r["approve_command"])
        for r in webhook.received
    ] == [
        (
            "awaiting_approval",
            "s3://sentinel-runs/runs/retrain-shapes/evaluation/r-1/",
            None,
            'sentinel retrain approve shapes --by "$USER" --comment "..."',
        ),
        (
            "succeeded",
            "s3://sentinel-models/models/shapes/v3/report.md",
            "sentinel models report shapes --version 3 --out shapes-v3",
            None,
        ),
    ]
    assert webhook.received[0]["reason"] == "promoted: +0.02"  # the gate's decision
    assert webhook.received[0]["metrics"] == {"map50_95": 0.61}
    assert webhook.received[0]["reject_command"] == (
        'sentinel retrain reject shapes --by "$USER" --comment "..."'
    )
