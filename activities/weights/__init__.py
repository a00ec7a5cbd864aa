"""The pretrained-weights catalog and weights inspection (CPU queue).

* :mod:`.catalog` catalog records in the models bucket (``weights/catalog/{name}.json``);
* :mod:`.checkpoint` what an Ultralytics checkpoint is (task, classes), read after verification;
* :mod:`.activity` the Temporal activities.

Heavy imports (torch, Ultralytics) happen inside functions, after
:func:`activities.infra.yolo_env.bootstrap_offline`.
"""

from activities.weights.catalog import Catalog

__all__ = ["Catalog"]
