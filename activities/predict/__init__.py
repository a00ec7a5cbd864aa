"""Batch prediction with a registered version (PredictWorkflow's activities).

* :mod:`.layout` object keys under the caller's output prefix
* :mod:`.records` the stored plan and per-image predictions (JSON, validated on read)
* :mod:`.models` versions resolved through the registry, weights loaded only verified
* :mod:`.plan` images listed, checked and cut into content-addressed shards
* :mod:`.infer` Ultralytics (PyTorch or ONNX Runtime) -> prediction records, every task
* :mod:`.shard` one shard, batch by batch, resumable after a kill
* :mod:`.ranking` which images a labeller should check first
* :mod:`.formats` COCO results, YOLO label files, Label Studio tasks
* :mod:`.finish` merged outputs, ranking, summary and manifest; :mod:`.activity` activities
"""

from activities.predict.activity import PredictActivities

__all__ = ["PredictActivities"]
