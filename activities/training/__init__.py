"""The training stage: Ultralytics YOLO on the GPU queue, made durable.

Modules (small on purpose):

- :mod:`.args` hyperparameters -> Ultralytics train arguments, validated before training;
- :mod:`.base_model` the starting weights (registry version, S3 ``.pt`` or architecture yaml);
- :mod:`.checkpoints` atomic copies of ``last.pt``, background upload, heartbeat details;
- :mod:`.resume` picking a verified checkpoint from heartbeat details after a retry;
- :mod:`.control` the stop-early control object and the ``write_control`` activity;
- :mod:`.oom` CUDA out-of-memory: batch halving down to a floor;
- :mod:`.callbacks` one small hook per Ultralytics event;
- :mod:`.results` the :class:`~activities.contracts.training.TrainResult` pieces;
- :mod:`.activity` :class:`TrainingActivities` (the ``train`` activity).

Importing this package is cheap; Ultralytics and torch are imported inside the activity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activities.training.activity import TrainingActivities
    from activities.training.control import ControlActivities

__all__ = ["ControlActivities", "TrainingActivities"]


def __getattr__(name: str) -> Any:
    if name == "TrainingActivities":
        from activities.training.activity import TrainingActivities

        return TrainingActivities
    if name == "ControlActivities":
        from activities.training.control import ControlActivities

        return ControlActivities
    raise AttributeError(name)
