"""The training log of one attempt, kept in object storage beside the run's checkpoints.

``runs/{workflow_id}/logs/attempt-{n}.log`` holds: the lines the attempt writes itself (start,
resume, dataset, one line per epoch with losses and metrics, checkpoints, how it ended), the
records of our training modules' loggers and Ultralytics' own log records (each at the level
its logger is set to: Ultralytics is quiet with ``YOLO_VERBOSE=False``). Records are taken
only from the attempt's own threads: a context variable, set in the activity's thread and
copied into the threads it starts, so concurrent trainings on one worker never mix logs.

The log lives in memory (capped, the middle dropped first) and is uploaded every
``upload_interval`` seconds when it grew, and once more when the attempt ends, however it
ends (:meth:`RunLog.close`). Uploading never fails or slows training: errors are logged.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from activities.contracts.training import TrainRequest
from activities.infra import timings
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)

UPLOAD_INTERVAL_SECONDS = 30.0
MAX_LOG_BYTES = 8 * 1024 * 1024
"""In-memory cap; past it the oldest lines after the first ``KEEP_HEAD_BYTES`` are dropped."""
KEEP_HEAD_BYTES = 64 * 1024
CAPTURED_LOGGERS = ("ultralytics", "activities.training", "activities.dataset")

_current: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar(
    "sentinel_run_log", default=None
)


def logs_prefix(run_prefix: str) -> str:
    """``runs/{workflow_id}/logs/``."""
    return f"{run_prefix}logs/"


def log_key(run_prefix: str, attempt: int) -> str:
    return f"{logs_prefix(run_prefix)}attempt-{attempt}.log"


def attempt_of_key(key: str) -> int | None:
    """``.../attempt-3.log`` -> 3 (None for any other name)."""
    name = key.rsplit("/", 1)[-1]
    number = name.removeprefix("attempt-").removesuffix(".log")
    if not (name.startswith("attempt-") and name.endswith(".log") and number.isdigit()):
        return None
    return int(number)


class _Capture(logging.Handler):
    """Routes log records to the RunLog of the thread that emits them (if any)."""

    def emit(self, record: logging.LogRecord) -> None:
        run_log = _current.get()
        if run_log is not None:
            run_log.write(f"{record.levelname.lower()} {record.name}: {record.getMessage()}")


_CAPTURE = _Capture()


def _install_capture() -> None:
    for name in CAPTURED_LOGGERS:
        logger = logging.getLogger(name)
        if _CAPTURE not in logger.handlers:
            logger.addHandler(_CAPTURE)


class RunLog:
    """One attempt's log: write lines, upload periodically, close once (final upload)."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        run_prefix: str,
        attempt: int,
        *,
        upload_interval: float = UPLOAD_INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.key = log_key(run_prefix, attempt)
        self.upload_interval = upload_interval
        self._buffer = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()
        self._version = 0
        self._uploaded_version = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: contextvars.Token[RunLog | None] | None = None

    def start(self) -> RunLog:
        """Capture this thread's log records (and its future threads'); upload periodically."""
        _install_capture()
        self._token = _current.set(self)
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._upload_forever,), name="run-log", daemon=True
        )
        self._thread.start()
        return self

    def write(self, line: str) -> None:
        """Append one timestamped line."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = f"{stamp} {line.rstrip()}\n".encode(errors="replace")
        with self._lock:
            self._buffer += data
            if len(self._buffer) > MAX_LOG_BYTES:
                cut = len(self._buffer) - MAX_LOG_BYTES // 2
                self._dropped += cut
                del self._buffer[KEEP_HEAD_BYTES : KEEP_HEAD_BYTES + cut]
            self._version += 1

    def text(self) -> bytes:
        with self._lock:
            if not self._dropped:
                return bytes(self._buffer)
            note = f"... {self._dropped} bytes of log dropped (cap {MAX_LOG_BYTES}) ...\n"
            head = bytes(self._buffer[:KEEP_HEAD_BYTES])
            return head + note.encode() + bytes(self._buffer[KEEP_HEAD_BYTES:])

    def upload(self) -> bool:
        """Upload now if the log changed since the last upload; False when that failed."""
        with self._lock:
            version = self._version
        if version == self._uploaded_version:
            return True
        try:
            with timings.span("run_log_upload"):
                self.store.put_bytes(self.bucket, self.key, self.text(), content_type="text/plain")
        except Exception as exc:  # the log must never fail the training
            log.warning("training log not uploaded to %s: %s", self.key, exc)
            return False
        self._uploaded_version = version
        return True

    def _upload_forever(self) -> None:
        while not self._closed.wait(self.upload_interval):
            self.upload()

    def close(self, final_line: str | None = None) -> None:
        """Stop capturing, write ``final_line``, upload a last time (idempotent)."""
        if final_line:
            self.write(final_line)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.upload()


def epoch_line(epoch: int, epochs: int, metrics: dict[str, Any], seconds: float | None) -> str:
    """``epoch 3/10  box_loss 1.234 ... mAP50 0.412 mAP50-95 0.221  (12.3 s)``."""
    shown = []
    for name, value in metrics.items():
        if isinstance(value, int | float):
            label = name.split("/", 1)[-1].removesuffix("(B)")
            shown.append(f"{label} {float(value):.4g}")
    took = f"  ({seconds:.1f} s)" if seconds is not None else ""
    return f"epoch {epoch}/{epochs}  {'  '.join(shown)}{took}"


def start_line(request: TrainRequest, workflow_id: str, attempt: int) -> str:
    """The first line of an attempt's log: what it trains, on what."""
    hp = request.hyperparameters
    base = request.base.kind if request.base else "the default"
    return (
        f"attempt {attempt} of {workflow_id}: train {request.model_name} from "
        f"{base} base, {hp.epochs} epochs, imgsz {hp.imgsz}, batch {hp.batch}, "
        f"snapshot {request.snapshot.dataset}@{request.snapshot.sha256[:12]}"
    )


def delete_stale_logs(store: ObjectStore, bucket: str, run_prefix: str) -> None:
    """First attempt of a run: logs under the prefix are an earlier run's (same workflow id)."""
    try:
        store.delete_prefix(bucket, logs_prefix(run_prefix))
    except Exception as exc:  # a stale log misleads but harms nothing: carry on
        log.warning("could not remove stale training logs under %s: %s", run_prefix, exc)
