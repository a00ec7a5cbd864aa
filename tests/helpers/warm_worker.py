"""``python -m tests.helpers.warm_worker --queues cpu,gpu``: ``python -m workers``, warmed.

A worker process imports Ultralytics, torch and ONNX lazily, inside its first training,
evaluation or export, which takes seconds on a loaded machine. The fault suite keeps a
*standby* worker beside the one it kills, so that the retried attempt starts at once: this
entry point imports what those activities import, then runs the ordinary worker.
"""

from __future__ import annotations

import importlib

WARM_MODULES = (
    "onnx",
    "onnxruntime",
    "torch.onnx",
    "ultralytics.engine.exporter",
    "ultralytics.models.yolo.detect",
    "ultralytics.nn.autobackend",
)


def warm() -> None:
    """Import what the first train / evaluate / export would (offline, as the worker does)."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    for module in WARM_MODULES:
        importlib.import_module(module)


if __name__ == "__main__":
    from activities.infra.connection import exit_process
    from workers.__main__ import main

    warm()
    exit_process(main())
