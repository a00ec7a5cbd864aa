"""Webhook notifications: delivered as JSON, and a broken webhook never raises."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from temporalio.testing import ActivityEnvironment

from activities.contracts.notify import NotifyRequest
from activities.infra.settings import Settings
from activities.notify import NotifyActivities
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
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_summary_is_posted_as_json(webhook: tuple[str, list[dict]]) -> None:
    url, received = webhook
    activities = NotifyActivities(Settings(webhook_url=url))
    result = ActivityEnvironment().run(activities.notify, SUMMARY)
    assert result.delivered and result.detail == "HTTP 204"
    assert received == [SUMMARY.model_dump(mode="json")]


def test_unreachable_webhook_is_reported_not_raised() -> None:
    activities = NotifyActivities(Settings(webhook_url=f"http://127.0.0.1:{free_port()}/hook"))
    result = ActivityEnvironment().run(activities.notify, SUMMARY)
    assert not result.delivered and result.detail.startswith("webhook failed")


def test_no_webhook_configured() -> None:
    result = ActivityEnvironment().run(NotifyActivities(Settings(webhook_url=None)).notify, SUMMARY)
    assert not result.delivered and result.detail == "no webhook configured"


def test_approval_and_report_locations_are_posted(webhook: tuple[str, list[dict]]) -> None:
    url, received = webhook
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
