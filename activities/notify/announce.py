"""Production events: ``promoted`` / ``rolled_back`` whenever the production alias moves.

The registry activities call :meth:`ProductionAnnouncer.announce` after a move, whichever path
moved it (a retrain's publish, ``sentinel models promote``, ``sentinel models rollback``), so no
workflow changes. Best effort, off the activity's thread: the move is done and recorded before
this runs, a slow or dead receiver never delays or fails it. Retries back off and keep the
delivery id; a worker stopping mid-retry drops the rest (the alias history stays the truth).
"""

from __future__ import annotations

import logging
import threading
import time

from activities.contracts.notify import ProductionEvent, ProductionNotice
from activities.contracts.registry import AliasEvent
from activities.infra.settings import Settings
from activities.notify.activity import delivery_id
from activities.notify.webhook import (
    WebhookDeliveryError,
    WebhookRefusedError,
    WebhookTarget,
    target_from_settings,
)

log = logging.getLogger(__name__)


def production_event(event: AliasEvent) -> ProductionEvent:
    """``rolled_back`` when production went back (a rollback, or a promote of an older
    version), else ``promoted``."""
    older = event.previous_version is not None and event.version < event.previous_version
    return "rolled_back" if event.action == "rollback" or older else "promoted"


def production_notice(model: str, event: AliasEvent, timestamp: int) -> ProductionNotice:
    """The body of the event announcing one move of the alias."""
    return ProductionNotice(
        event=production_event(event),
        delivery_id=delivery_id("production", model, event.seq, event.request_id),
        timestamp=timestamp,
        model_name=model,
        version=event.version,
        previous_version=event.previous_version,
        action=event.action,
        reason=event.reason,
        request_id=event.request_id,
        at=event.at,
        seq=event.seq,
    )


class ProductionAnnouncer:
    """Sends production events to the configured webhook (nothing when none is set)."""

    def __init__(
        self,
        settings: Settings,
        *,
        attempts: int = 4,
        first_delay_seconds: float = 2.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.target: WebhookTarget | None = target_from_settings(settings)
        self.attempts = attempts
        self.first_delay_seconds = first_delay_seconds
        self.timeout_seconds = timeout_seconds

    def announce(self, model: str, event: AliasEvent) -> threading.Thread | None:
        """Start delivering the event in the background; the thread (for tests to join)."""
        if self.target is None:
            return None
        thread = threading.Thread(
            target=self._deliver,
            args=(self.target, model, event),
            daemon=True,
            name=f"webhook-{model}-{event.seq}",
        )
        thread.start()
        return thread

    def _deliver(self, target: WebhookTarget, model: str, event: AliasEvent) -> None:
        delay = self.first_delay_seconds
        for attempt in range(1, self.attempts + 1):
            timestamp = int(time.time())
            notice = production_notice(model, event, timestamp)
            body = notice.model_dump_json().encode()
            try:
                target.post(notice.event, notice.delivery_id, timestamp, body, self.timeout_seconds)
                return
            except WebhookRefusedError as exc:
                log.warning("webhook delivery %s refused: %s", notice.delivery_id, exc)
                return
            except WebhookDeliveryError as exc:
                log.warning(
                    "webhook delivery %s (%s of %s v%s, attempt %d/%d): %s",
                    notice.delivery_id,
                    notice.event,
                    model,
                    event.version,
                    attempt,
                    self.attempts,
                    exc,
                )
            except Exception as exc:  # never let a notification crash a worker thread
                log.warning("webhook delivery %s: %s", notice.delivery_id, type(exc).__name__)
                return
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
