"""Which workflows and activities each kind of worker serves.

CPU workers: workflows (cheap, deterministic) and data/registry activities.
GPU workers: training and evaluation only, so a GPU never waits behind a dataset listing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeGuard

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.tracking import Tracking
from activities.training.progress import ProgressReporter

QueueKind = Literal["cpu", "gpu"]


def workflows() -> list[type]:
    """Every workflow class (registered on CPU workers)."""
    from workflows.controller import RetrainCheckWorkflow
    from workflows.registry_ops import (
        ListVersionsWorkflow,
        PromoteVersionWorkflow,
        RollbackProductionWorkflow,
        ShowVersionWorkflow,
    )
    from workflows.retrain import RetrainWorkflow

    return [
        RetrainWorkflow,
        RetrainCheckWorkflow,
        ListVersionsWorkflow,
        ShowVersionWorkflow,
        PromoteVersionWorkflow,
        RollbackProductionWorkflow,
    ]


def activities(
    kind: QueueKind,
    settings: Settings,
    store: ObjectStore,
    progress: ProgressReporter | None = None,
) -> list[Callable[..., Any]]:
    """Activity callables for one queue kind, bound to ``settings`` and ``store``.

    ``progress`` lets training report each epoch to its workflow (the ``progress`` query).
    Training, evaluation and the registry record runs in MLflow when
    ``settings.mlflow_tracking_uri`` is set (one background sender per process).
    """
    tracking = Tracking.from_settings(settings)
    if kind == "cpu":
        from activities.controller import ControllerActivities
        from activities.dataset import DatasetActivities
        from activities.export import ExportActivities
        from activities.notify import NotifyActivities
        from activities.registry.activity import RegistryActivities
        from activities.training.control import ControlActivities

        dataset = DatasetActivities(settings, store)
        control = ControlActivities(settings, store)
        notify = NotifyActivities(settings)
        controller = ControllerActivities(settings, store)
        export = ExportActivities(settings, store)
        registry = RegistryActivities(settings, store, tracking=tracking)
        return [
            dataset.assemble_dataset,
            control.write_control,
            notify.notify,
            controller.count_new_verified,
            export.export,
            registry.publish,
            registry.list_versions,
            registry.show_version,
            registry.promote_version,
            registry.rollback_production,
        ]
    if kind == "gpu":
        from activities.evaluation import EvaluationActivities
        from activities.training.activity import TrainingActivities
        from activities.training.progress import training_progress_callbacks

        callbacks = training_progress_callbacks(progress, tracking) if progress else None
        training = TrainingActivities(settings, store, extra_callbacks=callbacks, tracking=tracking)
        evaluation = EvaluationActivities(settings, store, tracking=tracking)
        return [training.train, evaluation.evaluate]
    raise ValueError(f"unknown queue kind {kind!r}: use 'cpu' or 'gpu'")


def is_queue_kind(text: str) -> TypeGuard[QueueKind]:
    return text in ("cpu", "gpu")


def parse_queues(text: str) -> Sequence[QueueKind]:
    """``"cpu,gpu"`` -> ``("cpu", "gpu")``; a clear error for anything else."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    kinds = [part for part in parts if is_queue_kind(part)]
    if len(kinds) != len(parts) or not kinds:
        raise ValueError(f"invalid queues {text!r}: use 'cpu', 'gpu' or 'cpu,gpu'")
    return tuple(dict.fromkeys(kinds))
