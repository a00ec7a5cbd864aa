"""Which workflows and activities each kind of worker serves.

CPU workers: workflows (cheap, deterministic), data/registry activities, and prediction's
planning, finishing and ONNX Runtime shards.
GPU workers: training, evaluation and PyTorch prediction shards, so a GPU never waits behind a
dataset listing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeGuard

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.infra.workflow_runs import WorkflowRuns
from activities.tracking import Tracking
from activities.training.progress import ProgressReporter

QueueKind = Literal["cpu", "gpu"]


def workflows() -> list[type]:
    """Every workflow class (registered on CPU workers)."""
    from workflows.catalog_ops import AddWeightsWorkflow, ListWeightsWorkflow
    from workflows.controller import RetrainCheckWorkflow
    from workflows.import_model import ImportModelWorkflow
    from workflows.inspection import TrainingLogWorkflow, ValidateDatasetWorkflow
    from workflows.predict import PredictWorkflow
    from workflows.registry_ops import (
        DownloadLinksWorkflow,
        ListVersionsWorkflow,
        PromoteVersionWorkflow,
        RollbackProductionWorkflow,
        ShowVersionWorkflow,
        VerifyModelWorkflow,
    )
    from workflows.retention import GarbageCollectionWorkflow
    from workflows.retrain import RetrainWorkflow

    return [
        RetrainWorkflow,
        RetrainCheckWorkflow,
        ListVersionsWorkflow,
        ShowVersionWorkflow,
        PromoteVersionWorkflow,
        RollbackProductionWorkflow,
        GarbageCollectionWorkflow,
        ImportModelWorkflow,
        AddWeightsWorkflow,
        ListWeightsWorkflow,
        ValidateDatasetWorkflow,
        TrainingLogWorkflow,
        DownloadLinksWorkflow,
        PredictWorkflow,
        VerifyModelWorkflow,
    ]


def activities(
    kind: QueueKind,
    settings: Settings,
    store: ObjectStore,
    progress: ProgressReporter | None = None,
    *,
    runs: WorkflowRuns | None = None,
) -> list[Callable[..., Any]]:
    """Activity callables for one queue kind, bound to ``settings`` and ``store``.

    ``progress`` lets training report each epoch to its workflow (the ``progress`` query);
    ``runs`` lets retention ask Temporal which workflows are running.
    Training, evaluation and the registry record runs in MLflow when
    ``settings.mlflow_tracking_uri`` is set (one background sender per process).
    """
    tracking = Tracking.from_settings(settings)
    if kind == "cpu":
        from activities.controller import ControllerActivities
        from activities.dataset import DatasetActivities
        from activities.export import ExportActivities
        from activities.notify import NotifyActivities
        from activities.notify.announce import ProductionAnnouncer
        from activities.predict import PredictActivities
        from activities.registry.activity import RegistryActivities
        from activities.retention import RetentionActivities
        from activities.training.control import ControlActivities
        from activities.training.logs import TrainingLogActivities
        from activities.weights.activity import WeightsActivities

        dataset = DatasetActivities(settings, store)
        control = ControlActivities(settings, store)
        notify = NotifyActivities(settings)
        controller = ControllerActivities(settings, store)
        export = ExportActivities(settings, store)
        announcer = ProductionAnnouncer(settings)
        registry = RegistryActivities(
            settings, store, tracking=tracking, on_production_move=announcer.announce
        )
        retention = RetentionActivities(settings, store, runs)
        weights = WeightsActivities(settings, store)
        logs = TrainingLogActivities(settings, store)
        predict = PredictActivities(settings, store)
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
            retention.collect_garbage,
            weights.inspect_weights,
            weights.record_weights,
            weights.list_weights,
            dataset.validate_dataset,
            logs.read_training_log,
            registry.download_links,
            registry.verify_model,
            predict.plan_prediction,
            predict.predict_shard,  # model.onnx with ONNX Runtime
            predict.finish_prediction,
        ]
    if kind == "gpu":
        from activities.evaluation import EvaluationActivities
        from activities.predict import PredictActivities
        from activities.training.activity import TrainingActivities
        from activities.training.progress import training_progress_callbacks

        callbacks = training_progress_callbacks(progress, tracking=tracking) if progress else None
        training = TrainingActivities(settings, store, extra_callbacks=callbacks, tracking=tracking)
        evaluation = EvaluationActivities(settings, store, tracking=tracking)
        predict = PredictActivities(settings, store)
        return [training.train, evaluation.evaluate, predict.predict_shard]  # model.pt
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
