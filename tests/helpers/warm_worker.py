"""``python -m tests.helpers.warm_worker --queues cpu,gpu``: ``python -m workers``, warmed.

A worker process imports Ultralytics, torch and ONNX lazily, inside its first training,
evaluation or export, which takes seconds on a loaded machine. The fault suite keeps a
*standby* worker beside the one it kills, so that the retried attempt starts at once: this
entry point imports what those activities import, then runs the ordinary worker.

One setting differs from ``python -m workers``: workflow tasks wait at most
:data:`STICKY_SECONDS` (the SDK's default is 10 s) for the worker that cached the workflow
before any worker takes them. Killing the process that holds the cache is what the fault
suite does on purpose, trial after trial; the recovery path is the same, only shorter.
"""

from __future__ import annotations

import functools
import importlib
from datetime import timedelta
from typing import Any

WARM_MODULES = (
    "onnx",
    "onnxruntime",
    "torch.onnx",
    "ultralytics.engine.exporter",
    "ultralytics.models.yolo.detect",
    "ultralytics.nn.autobackend",
)
STICKY_SECONDS = 2.0


def warm() -> None:
    """Import what the first train / evaluate / export would (offline, as the worker does)."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    for module in WARM_MODULES:
        importlib.import_module(module)


def short_sticky_timeout() -> None:
    """Workers built from now on hand a killed peer's cached workflows over after 2 s."""
    from temporalio.worker import Worker

    original = Worker.__init__

    @functools.wraps(original)
    def init(self: Worker, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "sticky_queue_schedule_to_start_timeout", timedelta(seconds=STICKY_SECONDS)
        )
        original(self, *args, **kwargs)

    Worker.__init__ = init  # type: ignore[method-assign]  # this test process only


if __name__ == "__main__":
    from activities.infra.connection import exit_process
    from workers.__main__ import main

    warm()
    short_sticky_timeout()
    exit_process(main())
