"""The stages' view of experiment tracking: :class:`Tracking` per process, :class:`RunTracker`
per retrain. Every method only enqueues (see :mod:`.sink`); with tracking off (no
``SENTINEL_MLFLOW_TRACKING_URI``) every method does nothing at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Literal

from activities.infra.settings import Settings
from activities.tracking.registry_mirror import RegistryState, mirror
from activities.tracking.session import EPOCH_MARKER, RunIdentity, Session
from activities.tracking.sink import Record, RunStatus, Sink

RunEnd = Literal["FINISHED", "FAILED", "KILLED"]
RunOperation = Callable[[Session, str], None]
"""Something to do with the MLflow run (``session``, MLflow run id), in the sink's thread."""

_sinks: dict[tuple[str, str, float], Sink] = {}
_sinks_lock = threading.Lock()


def _now_ms() -> int:
    return int(time.time() * 1000)


class RunTracker:
    """Records of one retrain (one MLflow run), any stage, any attempt."""

    def __init__(self, sink: Sink | None, ident: RunIdentity) -> None:
        self.sink = sink
        self.ident = ident
        self._epochs: set[int] | None = None  # used only in the sink's thread

    @property
    def enabled(self) -> bool:
        return self.sink is not None

    def call(self, what: str, operation: RunOperation) -> None:
        """Enqueue ``operation`` for this run's MLflow run (found or created when it runs)."""
        if self.sink is None:
            return
        ident = self.ident
        self.sink.submit(
            Record(ident.workflow_run_id, what, lambda s: operation(s, s.run_id(ident)))
        )

    def params(self, params: Mapping[str, object]) -> None:
        values, at = {k: str(v) for k, v in params.items()}, _now_ms()
        self.call("parameters", lambda s, run: s.log(run, params=values, timestamp_ms=at))

    def tags(self, tags: Mapping[str, object]) -> None:
        values, at = {k: str(v) for k, v in tags.items()}, _now_ms()
        self.call("tags", lambda s, run: s.log(run, tags=values, timestamp_ms=at))

    def metrics(self, values: Mapping[str, float]) -> None:
        """Summary metrics of the run (step 0), e.g. the evaluation's. Each is logged once: a
        retried attempt (same candidate, same numbers) never adds a second value."""
        metrics, at = dict(values), _now_ms()

        def operation(session: Session, run: str) -> None:
            logged = session.client.get_run(run).data.metrics
            missing = {key: value for key, value in metrics.items() if key not in logged}
            if missing:
                session.log(run, metrics=missing, timestamp_ms=at)

        self.call("metrics", operation)

    def epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        """The metrics of one epoch (``step`` = epoch), unless that step is logged already."""
        metrics, at = dict(values), _now_ms()
        self.call(f"epoch {epoch}", lambda s, run: self._log_epoch(s, run, epoch, metrics, at))

    def backfill(self, rows: Mapping[int, Mapping[str, float]]) -> None:
        """Epochs that are not in the run yet (e.g. lost with a killed worker), from a CSV."""
        copied = {epoch: dict(values) for epoch, values in rows.items()}
        self.call("epochs from results.csv", lambda s, run: self.backfill_now(s, run, copied))

    def backfill_now(
        self, session: Session, run: str, rows: Mapping[int, Mapping[str, float]]
    ) -> None:
        """:meth:`backfill` from inside a record (the tracking thread)."""
        at = _now_ms()
        for epoch in sorted(rows):
            self._log_epoch(session, run, epoch, dict(rows[epoch]), at)

    def text(self, artifact_file: str, text: str) -> None:
        self.call(artifact_file, lambda s, run: s.log_text(run, artifact_file, text))

    def finish(self, status: RunEnd) -> None:
        self.call(f"end ({status})", lambda s, run: s.finish(run, status))

    def status(self) -> RunStatus:
        return self.sink.status(self.ident.workflow_run_id) if self.sink else RunStatus()

    def status_line(self) -> str | None:
        """None while all is well; else what is waiting or lost, in one line."""
        return self.status().line()

    def _log_epoch(
        self, session: Session, run: str, epoch: int, metrics: dict[str, float], at: int
    ) -> None:
        if self._epochs is None:  # once per attempt: another worker may have logged some
            self._epochs = session.logged_epochs(run)
        if epoch in self._epochs:
            return
        session.log(run, metrics={**metrics, EPOCH_MARKER: float(epoch)}, step=epoch,
                    timestamp_ms=at)  # fmt: skip
        self._epochs.add(epoch)


class Tracking:
    """Experiment tracking of this process: on with a tracking URI, else a no-op."""

    def __init__(self, sink: Sink | None) -> None:
        self.sink = sink

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracking:
        """The process-wide tracking for ``settings`` (one sink per tracking server)."""
        uri = settings.mlflow_tracking_uri
        if not uri:
            return cls(None)
        prefix, timeout = settings.mlflow_experiment_prefix, settings.mlflow_timeout_seconds
        with _sinks_lock:
            sink = _sinks.get((uri, prefix, timeout))
            if sink is None or sink.closed:
                sink = Sink(lambda: Session(uri, prefix, timeout))
                _sinks[(uri, prefix, timeout)] = sink
        return cls(sink)

    @property
    def enabled(self) -> bool:
        return self.sink is not None

    def run(self, model: str, workflow_id: str, workflow_run_id: str) -> RunTracker:
        """The tracker of one retrain (identified by its Temporal workflow run id)."""
        return RunTracker(self.sink, RunIdentity(model, workflow_id, workflow_run_id))

    def mirror_registry(self, model: str, read_state: Callable[[], RegistryState]) -> None:
        """Make MLflow's model registry match ours (read when the record is sent)."""
        if self.sink is None:
            return

        def operation(session: Session) -> None:
            mirror(session, read_state())

        self.sink.submit(Record(f"registry:{model}", "model registry", operation))

    def status_line(self, workflow_run_id: str) -> str | None:
        return self.sink.status(workflow_run_id).line() if self.sink else None

    def close(self, timeout: float) -> bool:
        """Send what is waiting for up to ``timeout`` seconds (worker shutdown)."""
        return self.sink.close(timeout) if self.sink else True
