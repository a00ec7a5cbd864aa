"""Experiment tracking in MLflow: optional, and never in the way of a run.

On only when ``SENTINEL_MLFLOW_TRACKING_URI`` is set. The stages hand records to
:class:`Tracking` / :class:`RunTracker` (:mod:`.tracker`), which only enqueue them; one
background thread per worker process sends them (:mod:`.sink`), retries what fails and
reports what could not be sent. A tracking server that is slow or down therefore never slows
or fails a run; MLflow itself is imported in that thread only (:mod:`.session`).

What is tracked, one MLflow run per retrain (found again by the Temporal workflow run id):

- training: parameters (hyperparameters, base model and its digest, dataset counts, task),
  the dataset lineage (``mlflow.data``: snapshot manifest and test split, with digests and
  source), per-epoch metrics with ``step`` = epoch, never twice for one step;
- evaluation: test-split metrics of the candidate and the champion, the interval;
- publish: gate decision and champion as tags, report, results and plots as artifacts,
  missing epochs backfilled from ``results.csv``; then our registry mirrored into MLflow's
  model registry (:mod:`.registry_mirror`), also after every promote and rollback.

Pure helpers (names, values) are in :mod:`.records`.
"""

from activities.tracking.registry_mirror import MirroredVersion, RegistryState
from activities.tracking.sink import RunStatus
from activities.tracking.tracker import RunTracker, Tracking

__all__ = ["MirroredVersion", "RegistryState", "RunStatus", "RunTracker", "Tracking"]
