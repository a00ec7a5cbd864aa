"""Retention: sweeping what finished runs and dead publishes leave behind (``registry gc``).

* :mod:`.sweep` the policy (ages, how much to keep) and the accounting of one sweep
* :mod:`.runs` the runs bucket: checkpoints, controls and exports of finished runs
* :mod:`.registry` the models bucket: partial versions and the claims of dead publishes
* :mod:`.activity` the ``collect_garbage`` activity
"""

from activities.retention.activity import RetentionActivities

__all__ = ["RetentionActivities"]
