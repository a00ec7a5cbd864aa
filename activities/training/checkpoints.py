"""Checkpoints: atomic local copies of ``last.pt``, uploaded in the background.

After each epoch Ultralytics rewrites ``weights/last.pt`` in place. :meth:`CheckpointUploader.
submit` copies it atomically (temp file + ``os.replace``) into a staging directory, in the
training thread, *before* Ultralytics can strip the optimizer from it at the end of training, so
every staged copy is resumable. A mid-epoch state (:mod:`activities.training.resumable`) comes
as a writer instead (:meth:`CheckpointUploader.submit_writer`): it is serialised on the
uploader's thread, never the training one.

One background thread uploads staged copies to ``runs/{workflow_id}/checkpoints/`` under the
name of their position (:func:`checkpoint_key`: ``epoch-NNNN.pt`` after ``NNNN`` epochs,
``epoch-NNNN-sample-SSSSSSSSS.pt`` with ``S`` samples of the next epoch trained as well); a
newer position supersedes a pending (not yet started) upload, so a slow store never stalls
training. Only when an upload has completed does ``on_uploaded`` get the
:class:`CheckpointRef`, which the caller heartbeats.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.infra import metrics, timings
from activities.infra.files import atomic_copy
from activities.infra.signing import Keyring, sidecar_bytes, sidecar_key
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)

KEEP = 3
"""Checkpoints kept in object storage (newest first); older ones are deleted."""

_POSITION_KEY = re.compile(r"epoch-(\d{4,})(?:-sample-(\d{9,}))?\.pt$")

Position = tuple[int, int]
"""``(epochs completed, samples of the next epoch trained)``: where a checkpoint stands."""


@dataclass(frozen=True)
class CheckpointRef:
    """An uploaded checkpoint: ``epoch`` = epochs completed in it; ``samples`` > 0 for a
    mid-epoch one (samples of epoch ``epoch + 1`` already trained)."""

    epoch: int
    key: str
    sha256: str | None
    samples: int = 0

    @property
    def position(self) -> Position:
        return (self.epoch, self.samples)

    def describe(self) -> str:
        """``epoch 3`` or ``epoch 3 + 512 samples``, for logs."""
        return f"epoch {self.epoch}" + (f" + {self.samples} samples" if self.samples else "")

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "samples": self.samples, "key": self.key,
                "sha256": self.sha256}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any) -> CheckpointRef | None:
        """Lenient parse of heartbeat details (None when malformed)."""
        try:
            epoch, key, sha = int(data["epoch"]), str(data["key"]), data.get("sha256")
            samples = int(data.get("samples") or 0)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if epoch < 0 or samples < 0 or (epoch, samples) == (0, 0) or not key:
            return None
        return cls(epoch, key, str(sha) if sha else None, samples)


def checkpoint_prefix(run_prefix: str) -> str:
    return f"{run_prefix}checkpoints/"


def checkpoint_key(run_prefix: str, epoch: int, samples: int = 0) -> str:
    """The object key of the checkpoint at ``(epoch, samples)`` (see the module docstring)."""
    mid = f"-sample-{samples:09d}" if samples else ""
    return f"{checkpoint_prefix(run_prefix)}epoch-{epoch:04d}{mid}.pt"


def position_of_key(key: str) -> Position | None:
    """``(epoch, samples)`` named by a checkpoint key, None for any other object."""
    match = _POSITION_KEY.search(key)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def epoch_of_key(key: str) -> int | None:
    """Epochs completed in the checkpoint at ``key`` (mid-epoch ones included)."""
    position = position_of_key(key)
    return position[0] if position else None


def merge_refs(refs: list[CheckpointRef], new: CheckpointRef | None = None) -> list[CheckpointRef]:
    """Newest first, one per key (``new`` wins over an older ref with its key)."""
    by_key: dict[str, CheckpointRef] = {}
    for ref in ([new] if new else []) + refs:
        by_key.setdefault(ref.key, ref)
    return sorted(by_key.values(), key=lambda r: r.position, reverse=True)


class CheckpointUploader:
    """Stage ``last.pt`` copies and upload the newest one in a background thread."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        run_prefix: str,
        staging_dir: Path,
        on_uploaded: Callable[[CheckpointRef, list[CheckpointRef]], None],
        *,
        existing: list[CheckpointRef] | None = None,
        keep: int = KEEP,
        keys: Keyring | None = None,
    ) -> None:
        self.store = store
        self.keys = keys  # signs a sidecar per checkpoint: what a retry found by listing trusts
        self.bucket = bucket
        self.run_prefix = run_prefix
        self.staging_dir = staging_dir
        self.on_uploaded = on_uploaded
        self.keep = keep
        self.refs: list[CheckpointRef] = merge_refs(existing or [])
        self.uploads = 0
        self.failures = 0
        self.upload_seconds = 0.0
        self.serialise_seconds = 0.0
        self._cond = threading.Condition()
        self._pending: _Pending | None = None
        self._busy = False
        self._closed = False
        # The thread runs in a copy of the caller's context so it may heartbeat the activity.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="checkpoint-uploader", daemon=True
        )
        self._thread.start()

    def submit(self, last_pt: Path, epoch: int) -> None:
        """Stage a copy of ``last_pt`` (``epoch`` completed) and queue it, superseding any
        pending upload that has not started yet."""
        staged = self._staged((epoch, 0))
        atomic_copy(last_pt, staged)
        self._queue(_Pending((epoch, 0), staged, None))

    def submit_writer(self, position: Position, write: Callable[[Path], None]) -> None:
        """Queue a checkpoint that ``write(path)`` serialises, on the uploader's thread."""
        self._queue(_Pending(position, self._staged(position), write))

    def _staged(self, position: Position) -> Path:
        return self.staging_dir / Path(checkpoint_key("", *position)).name

    def _queue(self, item: _Pending) -> None:
        with self._cond:
            if self._pending is not None:
                log.info("checkpoint at %s superseded by %s", self._pending.position,
                         item.position)  # fmt: skip
                self._pending.path.unlink(missing_ok=True)
            self._pending = item
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or uploading; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Finish pending work (bounded by ``timeout``) and stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)

    @property
    def latest(self) -> CheckpointRef | None:
        with self._cond:
            return self.refs[0] if self.refs else None

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                item = self._pending
                self._pending = None
                self._busy = True
            try:
                serialised = 0.0
                if item.write is not None:
                    started = time.monotonic()
                    with timings.span("checkpoint_serialise"):  # off the training thread
                        item.write(item.path)
                    serialised = time.monotonic() - started
                    self.serialise_seconds += serialised
                self._upload(item.position, item.path, serialised)
            except Exception:  # never kill the thread: the next checkpoint tries again
                self.failures += 1
                metrics.CHECKPOINT_UPLOAD_FAILURES.inc()
                log.exception("checkpoint upload at %s failed", item.position)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _upload(self, position: Position, path: Path, serialised: float) -> None:
        key = checkpoint_key(self.run_prefix, *position)
        started = time.monotonic()
        info = self.store.put_file(self.bucket, key, path)
        metrics.CHECKPOINT_UPLOAD_SECONDS.observe(time.monotonic() - started)
        metrics.CHECKPOINT_UPLOAD_BYTES.inc(info.size)
        if self.keys is not None and info.sha256:
            body = sidecar_bytes(self.keys, key, info.sha256)
            self.store.put_bytes(self.bucket, sidecar_key(key), body)
        ref = CheckpointRef(position[0], key, info.sha256, position[1])
        with self._cond:
            self.refs = merge_refs(self.refs, ref)
            kept, dropped = self.refs[: self.keep], self.refs[self.keep :]
            self.refs = kept
        self.uploads += 1
        self.upload_seconds += time.monotonic() - started
        log.info("checkpoint %s serialised in %.3fs, uploaded to %s in %.3fs (%d bytes)",
                 ref.describe(), serialised, key, time.monotonic() - started,
                 path.stat().st_size)  # fmt: skip
        self.on_uploaded(ref, list(kept))
        for old in dropped:
            if old.key != key:
                try:
                    self.store.delete_many(self.bucket, [old.key, sidecar_key(old.key)])
                except Exception:  # best effort: an extra old object is harmless
                    log.warning("could not delete old checkpoint %s", old.key)
        # Keep the newest staged copy for this attempt; older local copies are not needed.
        for stale in self.staging_dir.glob("epoch-*.pt"):
            if stale != path and (position_of_key(stale.name) or (0, 0)) < position:
                stale.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Pending:
    """A checkpoint waiting for the uploader: staged at ``path`` (or written there first)."""

    position: Position
    path: Path
    write: Callable[[Path], None] | None
