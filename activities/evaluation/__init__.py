"""Champion vs challenger evaluation on a snapshot's test split.

* :mod:`.validate` one Ultralytics validation that keeps per-image statistics (and, for the
  evidence, boxes and plots);
* :mod:`.bootstrap` the paired bootstrap CIs of the mAP50-95 and per-class AP differences;
* :mod:`.evidence` the version's evidence: plots, :mod:`.compare` (per-image comparison) and
  :mod:`.pictures` (side-by-side pictures), uploaded to the runs bucket;
* :mod:`.activity` the ``evaluate`` activity; :mod:`.common` weights cache and heartbeats.

Heavy imports (torch, Ultralytics) happen inside functions, after
:func:`activities.infra.yolo_env.bootstrap_offline`.
"""

from activities.evaluation.activity import EvaluationActivities, evaluate

__all__ = ["EvaluationActivities", "evaluate"]
