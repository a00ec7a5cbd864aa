"""Webhook notification of a run's outcome, signed; never decides the run's outcome.

A delivery that fails (receiver down, 5xx) raises a retryable error, so Temporal retries the
activity with backoff (``NOTIFY_RETRY``) and the same delivery id; the workflow logs the final
failure and its outcome stands. Nothing here names the URL (a secret).
"""

from __future__ import annotations

import logging
import shlex
import time
import uuid

from temporalio import activity

from activities.contracts import names
from activities.contracts.notify import NotifyRequest, NotifyResult, RunNotice
from activities.infra.errors import translate_errors
from activities.infra.settings import Settings
from activities.notify.webhook import WebhookDeliveryError, target_from_settings

log = logging.getLogger(__name__)

# Delivery ids are UUIDv5 of what identifies a delivery, so every retry reuses its id.
DELIVERY_NAMESPACE = uuid.UUID("6c1f7f0e-3b1c-5d35-9d3e-5e6e7471a5c2")


def delivery_id(*parts: object) -> str:
    """The stable id of one delivery, from what identifies it."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, "/".join(str(p) for p in parts)))


def approval_commands(model: str) -> tuple[str, str]:
    """``(approve, reject)``: the exact commands a reviewer runs."""
    quoted = shlex.quote(model)
    return (
        f'sentinel retrain approve {quoted} --by "$USER" --comment "..."',
        f'sentinel retrain reject {quoted} --by "$USER" --comment "..."',
    )


def run_notice(request: NotifyRequest, delivery: str, timestamp: int) -> RunNotice:
    """The body of a run event."""
    approve, reject = (
        approval_commands(request.model_name)
        if request.outcome == "awaiting_approval"
        else (None, None)
    )
    return RunNotice(
        **request.model_dump(),
        event=request.outcome,
        delivery_id=delivery,
        timestamp=timestamp,
        approve_command=approve,
        reject_command=reject,
    )


class NotifyActivities:
    """Posts signed run events to ``SENTINEL_WEBHOOK_URL`` when set.

    The webhook settings are checked here, when the worker is built: a bad URL or a missing
    signing key stops the worker at start (ConfigurationError), not a run later.
    """

    def __init__(self, settings: Settings, timeout_seconds: float = 10.0) -> None:
        self.settings = settings
        self.timeout_seconds = timeout_seconds
        self.target = target_from_settings(settings)

    @activity.defn(name=names.NOTIFY)
    @translate_errors
    def notify(self, request: NotifyRequest) -> NotifyResult:
        """POST the signed event; a failed delivery raises (retryable unless refused)."""
        if self.target is None:
            return NotifyResult(delivered=False, detail="no webhook configured")
        info = activity.info()
        delivery = delivery_id("run", info.workflow_run_id, info.activity_id)
        timestamp = int(time.time())
        body = run_notice(request, delivery, timestamp).model_dump_json().encode()
        try:
            status = self.target.post(
                request.outcome, delivery, timestamp, body, self.timeout_seconds
            )
        except WebhookDeliveryError as exc:
            log.warning(
                "webhook delivery %s (%s, attempt %d): %s",
                delivery,
                request.outcome,
                info.attempt,
                exc,
            )
            raise
        return NotifyResult(delivered=True, detail=f"HTTP {status}, delivery {delivery}")
