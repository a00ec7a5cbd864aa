"""The ``assemble_dataset`` activity: :func:`~activities.dataset.assemble.assemble` on a worker."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import CancelledError

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest, AssembleResult
from activities.dataset.assemble import Progress, assemble
from activities.infra.errors import translate_errors
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore


def heartbeat_progress(min_interval: float = 0.5) -> Progress:
    """A progress callback that heartbeats ``{stage, done, total}`` and honours cancellation.

    Sync activities learn of a cancel only through heartbeats, so this is called often (every
    download and every 50 validated images) and sends at most one heartbeat per
    ``min_interval`` (the worker throttles further); a requested cancel raises CancelledError
    at the next call, between two steps, never inside a write.
    """
    last = 0.0

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal last
        if activity.is_cancelled():
            raise CancelledError(f"dataset assembly cancelled during {stage} ({done}/{total})")
        now = time.monotonic()
        if now - last >= min_interval or done == total:
            activity.heartbeat({"stage": stage, "done": done, "total": total})
            last = now

    return progress


class DatasetActivities:
    """Dataset activities bound to one store (dependency injection keeps tests free of globals)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.ASSEMBLE_DATASET, no_thread_cancel_exception=True)
    @translate_errors
    def assemble_dataset(self, request: AssembleRequest) -> AssembleResult:
        """Validated, content-hashed snapshot of ``request.prefix`` (reused when unchanged)."""
        return assemble(self.store, self.settings, request, progress=heartbeat_progress())
