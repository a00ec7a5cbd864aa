"""Helpers shared by the evaluate and export activities: weights cache and progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import CancelledError

from activities.contracts.evaluation import WeightsRef
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore, sha256_file

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


def no_progress(stage: str, done: int, total: int) -> None:
    return None


def heartbeat_progress(min_interval: float = 0.5) -> Progress:
    """Heartbeat ``{stage, done, total}`` (inside an activity) and honour cancellation.

    Outside an activity (direct calls, tests) it does nothing.
    """
    if not activity.in_activity():
        return no_progress
    last = 0.0

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal last
        if activity.is_cancelled():
            raise CancelledError(f"cancelled during {stage} ({done}/{total})")
        now = time.monotonic()
        if now - last >= min_interval or done == total:
            activity.heartbeat({"stage": stage, "done": done, "total": total})
            last = now

    return progress


def fetch_weights(store: ObjectStore, settings: Settings, ref: WeightsRef, suffix: str) -> Path:
    """The object ``ref`` in the local content-addressed weights cache, verified.

    A cached file is re-hashed before reuse; a download is verified against ``ref.sha256``
    (IntegrityError, non-retryable, on mismatch).
    """
    path = settings.cache_dir / "weights" / f"{ref.sha256}{suffix}"
    if path.is_file() and sha256_file(path) == ref.sha256:
        return path
    store.get_file(ref.bucket, ref.key, path, expected_sha256=ref.sha256)
    return path
