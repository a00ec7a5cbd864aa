"""The ``read_training_log`` activity (CPU queue): a run's training log, for ``retrain logs``.

Reads ``runs/{workflow_id}/logs/attempt-{n}.log`` (written by :mod:`.runlog`), verified like
every object we write, and returns its tail: the caller needs only Temporal access.
"""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.inspection import TrainingLogRequest, TrainingLogResult
from activities.infra.errors import NotFoundError, translate_errors
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.training.control import run_prefix
from activities.training.runlog import attempt_of_key, log_key, logs_prefix


def read_training_log(
    store: ObjectStore, bucket: str, request: TrainingLogRequest
) -> TrainingLogResult:
    """The requested attempt's log (default: the latest), its last ``max_bytes`` at most.

    A run without any log yet is an empty result; asking for an attempt that has none is
    NotFoundError naming the attempts that do.
    """
    prefix = run_prefix(request.workflow_id)
    found = (attempt_of_key(info.key) for info in store.list(bucket, logs_prefix(prefix)))
    attempts = sorted(n for n in found if n is not None)
    empty = TrainingLogResult(workflow_id=request.workflow_id, attempts=attempts, attempt=None)
    if not attempts:
        return empty
    attempt = request.attempt or attempts[-1]
    if attempt not in attempts:
        raise NotFoundError(
            f"{request.workflow_id} has no log of attempt {attempt}: attempts with a log: "
            f"{', '.join(map(str, attempts))}"
        )
    key = log_key(prefix, attempt)
    data = store.get_bytes(bucket, key)
    tail = data[-request.max_bytes :]
    return empty.model_copy(
        update={
            "attempt": attempt,
            "key": key,
            "size": len(data),
            "truncated": len(tail) < len(data),
            "text": tail.decode(errors="replace"),
        }
    )


class TrainingLogActivities:
    """The ``read_training_log`` activity bound to settings and a store."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.READ_TRAINING_LOG)
    @translate_errors
    def read_training_log(self, request: TrainingLogRequest) -> TrainingLogResult:
        """The training log of one attempt of a run (default: the latest)."""
        return read_training_log(self.store, self.settings.runs_bucket, request)
