"""Refusals before any training: a base of another task, pose weights with another
``kpt_shape``, a production champion of another task or class list.

Every message names both sides. The checks read the base's record or file and the champion's
``metadata.json`` only: nothing is trained, and the dataset is not materialized, when one fails.

A detect dataset whose class list differs from the champion's keeps the rule it always had (the
evaluation refuses it, or skips the comparison with ``skip_comparison_on_class_mismatch``);
for the other tasks the class list must match before training starts.
"""

from __future__ import annotations

from typing import Any

from activities.contracts.bases import ArchitectureBase
from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import TrainRequest
from activities.infra.errors import BadInputError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.base_model import PreparedBase


def check_base_model(model: Any, label: str, snapshot: SnapshotRef) -> None:
    """``model`` (an ``ultralytics.YOLO``) fits ``snapshot``: same task, same ``kpt_shape``."""
    if model.task != snapshot.task:
        raise BadInputError(
            f"base model {label!r} is a {model.task} model but dataset {snapshot.dataset!r} is "
            f"a {snapshot.task} dataset: pick {snapshot.task} weights (or the architecture "
            f"for {snapshot.task})"
        )
    if snapshot.task == "pose" and snapshot.kpt_shape is not None:
        theirs = _kpt_shape(model)
        if theirs is not None and list(theirs) != list(snapshot.kpt_shape):
            raise BadInputError(
                f"base model {label!r} has kpt_shape {list(theirs)} but dataset "
                f"{snapshot.dataset!r} has kpt_shape {list(snapshot.kpt_shape)}"
            )


def _kpt_shape(model: Any) -> list[int] | None:
    inner = getattr(model, "model", None)
    shape = getattr(inner, "kpt_shape", None)
    spec = getattr(inner, "yaml", None)
    if shape is None and isinstance(spec, dict):
        shape = spec.get("kpt_shape")
    return [int(v) for v in shape] if shape is not None else None


def check_architecture(name: str, snapshot: SnapshotRef) -> None:
    """An Ultralytics yaml builds a model of ``snapshot``'s task (yolov8n-pose.yaml: pose)."""
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    task = guess_model_task(yaml_model_load(name))
    if task != snapshot.task:
        raise BadInputError(
            f"base architecture {name!r} builds a {task} model but dataset "
            f"{snapshot.dataset!r} is a {snapshot.task} dataset"
        )


def check_champion(
    store: ObjectStore, settings: Settings, model: str, snapshot: SnapshotRef
) -> None:
    """The production version of ``model`` (if any) has the snapshot's task (and, beyond
    detect, its class list)."""
    from activities.registry import Registry

    registry = Registry(store, settings.models_bucket)
    version = registry.production_version(model)
    if version is None:
        return
    meta = registry.metadata(model, version)
    if meta.snapshot.task != snapshot.task:
        raise BadInputError(
            f"production champion {model} v{version} is a {meta.snapshot.task} model but "
            f"dataset {snapshot.dataset!r} is a {snapshot.task} dataset: train another model "
            "name for another task"
        )
    if snapshot.task != "detect" and list(meta.class_names) != list(snapshot.class_names):
        raise BadInputError(
            f"production champion {model} v{version} has classes {list(meta.class_names)} but "
            f"dataset {snapshot.dataset!r} has {list(snapshot.class_names)}: the candidate "
            "could not be compared with it"
        )
    if snapshot.task == "pose" and meta.snapshot.kpt_shape != snapshot.kpt_shape:
        raise BadInputError(
            f"production champion {model} v{version} has kpt_shape {meta.snapshot.kpt_shape} "
            f"but dataset {snapshot.dataset!r} has kpt_shape {snapshot.kpt_shape}"
        )


def check_before_training(
    store: ObjectStore, settings: Settings, request: TrainRequest, base: PreparedBase
) -> None:
    """Every refusal of this module for one training request (its base already prepared)."""
    snapshot = request.snapshot
    check_champion(store, settings, request.model_name, snapshot)
    if isinstance(request.base, ArchitectureBase) or base.source.endswith((".yaml", ".yml")):
        check_architecture(base.source, snapshot)
        return
    from ultralytics import YOLO

    try:  # loaded once more here (a small verified file) so a mismatch fails before the data
        model = YOLO(base.source)
    except Exception as exc:  # torch/pickle errors of many kinds
        raise BadInputError(f"base model {base.record.spec!r} cannot be loaded: {exc}") from None
    check_base_model(model, base.record.spec, snapshot)
