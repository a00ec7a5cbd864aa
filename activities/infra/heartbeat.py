"""Progress callbacks of the sync activities: ``progress(stage, done, total)``.

Stage code (assembly, materialization, evaluation, export, publish) reports progress through a
plain callable, so it runs the same in tests and scripts (:func:`no_progress`) as in an
activity, where :func:`heartbeat_progress` turns the calls into heartbeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import CancelledError

from activities.infra import timings

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


def no_progress(stage: str, done: int, total: int) -> None:
    """A progress callback that does nothing."""
    return None


def heartbeat_progress(what: str = "", min_interval: float = 0.5) -> Progress:
    """A callback that heartbeats ``{stage, done, total}`` and honours cancellation.

    Sync activities learn of a cancel only through heartbeats, so stage code calls it often
    (every download, every few validated images) and it sends at most one heartbeat per
    ``min_interval`` (the worker throttles further) plus the last of each stage; a requested
    cancel raises CancelledError (``"{what} cancelled during {stage}"``) at the next call,
    between two steps, never inside a write. Outside an activity (direct calls, tests) it does
    nothing.
    """
    if not activity.in_activity():
        return no_progress
    last = 0.0
    prefix = f"{what} " if what else ""

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal last
        if activity.is_cancelled():
            raise CancelledError(f"{prefix}cancelled during {stage} ({done}/{total})")
        now = time.monotonic()
        if now - last >= min_interval or done == total:
            with timings.span("heartbeat"):
                activity.heartbeat({"stage": stage, "done": done, "total": total})
            last = now

    return progress
