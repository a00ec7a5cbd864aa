"""Champion vs challenger evaluation on a snapshot's test split.

* :mod:`.validate` one Ultralytics validation that keeps per-image statistics;
* :mod:`.bootstrap` the paired bootstrap CI of the mAP50-95 difference;
* :mod:`.activity` the ``evaluate`` activity; :mod:`.common` weights cache and heartbeats.

Heavy imports (torch, Ultralytics) happen inside functions, after
:func:`activities.infra.yolo_env.bootstrap_offline`.
"""

from activities.evaluation.activity import EvaluationActivities, evaluate

__all__ = ["EvaluationActivities", "evaluate"]
