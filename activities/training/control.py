"""Stop-early control: an object under ``runs/{workflow_id}/control/`` polled by training.

Temporal cannot push data into a running activity, so the workflow's ``stop_early`` signal
handler runs the tiny ``write_control`` activity (CPU queue), which writes
``runs/{workflow_id}/control/stop_early``. The training callbacks poll for it at epoch ends,
at most once per ``interval`` seconds, and end gracefully after the current epoch.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from temporalio import activity

from activities.contracts import names
from activities.contracts.training import WriteControlRequest, WriteControlResult
from activities.infra.errors import SentinelError, translate_errors
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore, safe_relative_path

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 2.0


def run_prefix(workflow_id: str) -> str:
    """``runs/{workflow_id}/``, refusing ids that would escape the prefix."""
    safe_relative_path(f"runs/{workflow_id}")
    return f"runs/{workflow_id}/"


def control_prefix(prefix: str) -> str:
    return f"{prefix}control/"


def control_key(prefix: str, control: str = "stop_early") -> str:
    return f"{control_prefix(prefix)}{control}"


class ControlPoller:
    """``requested()``: has ``control`` been written? Throttled; once seen, stays True."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        prefix: str,
        control: str = "stop_early",
        *,
        interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.key = control_key(prefix, control)
        self.interval = interval
        self._last = float("-inf")
        self._seen = False

    def requested(self) -> bool:
        if self._seen:
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        try:
            self._seen = self.store.exists(self.bucket, self.key)
        except SentinelError as exc:  # a flaky store must not fail the training
            log.warning("could not poll %s: %s", self.key, exc)
            return False
        if self._seen:
            log.info("control object %s found", self.key)
        return self._seen


class ControlActivities:
    """The ``write_control`` activity (CPU queue)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.WRITE_CONTROL)
    @translate_errors
    def write_control(self, request: WriteControlRequest) -> WriteControlResult:
        """Write ``runs/{run_id}/control/{control}`` (idempotent: rewriting is harmless)."""
        key = control_key(run_prefix(request.run_id), request.control)
        body = {
            "control": request.control,
            "reason": request.reason,
            "at": datetime.now(UTC).isoformat(),
        }
        self.store.put_bytes(
            self.settings.runs_bucket,
            key,
            json.dumps(body).encode(),
            content_type="application/json",
        )
        return WriteControlResult(bucket=self.settings.runs_bucket, key=key)
