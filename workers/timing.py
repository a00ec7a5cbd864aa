"""The worker's activity interceptor that opens a timing record per activity execution.

Every activity (sync ones in their thread: the SDK copies the context into the executor)
runs inside :func:`activities.infra.timings.collecting`, so the spans on its code paths land
in one record that is logged as one ``timings ...`` line when it ends.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.infra import timings


def _marking_thread(fn: Callable[..., Any], record: timings.Timings) -> Callable[..., Any]:
    """A sync activity runs in an executor thread: the record learns which one first."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - what the SDK itself checks
    ):
        return fn  # async: runs on the event loop thread, where the record was opened

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        record.thread = threading.get_ident()
        return fn(*args, **kwargs)

    return run


class _TimedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with timings.collecting(info.activity_type, info.workflow_id or "", info.attempt) as rec:
            marked = dataclasses.replace(input, fn=_marking_thread(input.fn, rec))
            return await super().execute_activity(marked)


class TimingInterceptor(Interceptor):
    """Adds a :class:`~activities.infra.timings.Timings` record to every activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedActivity(next)
