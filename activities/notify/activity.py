"""Webhook notification of a run's outcome. Never fails the run: errors are logged."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from temporalio import activity

from activities.contracts import names
from activities.contracts.notify import NotifyRequest, NotifyResult
from activities.infra.settings import Settings

log = logging.getLogger(__name__)


class NotifyActivities:
    """Posts run summaries to ``SENTINEL_WEBHOOK_URL`` when set."""

    def __init__(self, settings: Settings, timeout_seconds: float = 10.0) -> None:
        self.settings = settings
        self.timeout_seconds = timeout_seconds

    @activity.defn(name=names.NOTIFY)
    def notify(self, request: NotifyRequest) -> NotifyResult:
        """POST the summary as JSON; report (never raise) delivery problems."""
        url = self.settings.webhook_url
        if not url:
            return NotifyResult(delivered=False, detail="no webhook configured")
        body = json.dumps(request.model_dump(mode="json")).encode()
        http_request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout_seconds) as response:
                return NotifyResult(delivered=True, detail=f"HTTP {response.status}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # A broken webhook must not fail or retry a finished training run.
            log.warning("webhook %s failed: %s", url, exc)
            return NotifyResult(delivered=False, detail=f"webhook failed: {exc}")
