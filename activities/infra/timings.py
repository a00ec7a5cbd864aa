"""Where an activity's seconds go: named costs timed around the real code paths.

Always on and cheap (two ``perf_counter`` calls and a locked dict update per span). The
worker opens one :class:`Timings` per activity execution (``workers/timing.py``, an activity
interceptor); code on the activity's paths wraps its costs in :func:`span` (a no-op outside an
activity, e.g. in scripts and tests that call stage code directly). Threads started by an
activity that copy its context (the checkpoint uploader, the setup keepalive) add to the same
record.

When the activity ends, its record is logged as one line (``timings stage=... run=...
attempt=... wall=... <cost>=<seconds>/<count> ...``) and kept in a small in-process ring
(:func:`recent`) that in-process tools (``bench/overhead.py``) read by workflow id.

Names are ``<cost>`` for work on the activity's thread and ``bg.<cost>`` for work in a
background thread that overlaps with it (not part of the wall time, but it takes CPU); the
interceptor tells the record which thread runs the activity (:attr:`Timings.thread`).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")

RECENT = 256
"""Activity records kept in the process (oldest dropped first)."""


@dataclass
class Timings:
    """The named costs of one activity execution: seconds and counts per name."""

    stage: str = ""
    run: str = ""
    attempt: int = 1
    wall: float = 0.0
    thread: int = field(default_factory=threading.get_ident)
    """The activity's own thread; spans from any other thread are named ``bg.<cost>``."""
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, seconds: float, count: int = 1) -> None:
        """Add ``seconds`` (and ``count`` occurrences) to ``name`` (``bg.name`` off-thread)."""
        if threading.get_ident() != self.thread:
            name = f"bg.{name}"
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.counts[name] = self.counts.get(name, 0) + count

    def line(self) -> str:
        """The one-line form that is logged (also what ``bench`` prints)."""
        with self._lock:
            costs = " ".join(
                f"{name}={self.seconds[name]:.3f}/{self.counts[name]}"
                for name in sorted(self.seconds)
            )
        return (
            f"timings stage={self.stage} run={self.run} attempt={self.attempt} "
            f"wall={self.wall:.3f} {costs}"
        ).rstrip()


_current: contextvars.ContextVar[Timings | None] = contextvars.ContextVar(
    "sentinel_timings", default=None
)
_recent: collections.deque[Timings] = collections.deque(maxlen=RECENT)
_recent_lock = threading.Lock()


def current() -> Timings | None:
    """The record of the activity running in this context (None outside one)."""
    return _current.get()


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """Time the block as ``name`` in the current activity's record (no-op outside one)."""
    record = _current.get()
    if record is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        record.add(name, time.perf_counter() - start)


def add(name: str, seconds: float, count: int = 1) -> None:
    """Add a measured cost to the current activity's record (no-op outside one)."""
    record = _current.get()
    if record is not None:
        record.add(name, seconds, count)


@contextlib.contextmanager
def collecting(stage: str, run: str = "", attempt: int = 1) -> Iterator[Timings]:
    """Open a record for one activity execution; logged and kept in :func:`recent` at the end."""
    record = Timings(stage=stage, run=run, attempt=attempt)
    token = _current.set(record)
    start = time.perf_counter()
    try:
        yield record
    finally:
        record.wall = time.perf_counter() - start
        _current.reset(token)
        with _recent_lock:
            _recent.append(record)
        log.info("%s", record.line())


def recent(run: str | None = None) -> list[Timings]:
    """The kept records, oldest first (only ``run``'s when given)."""
    with _recent_lock:
        return [r for r in _recent if run is None or r.run == run]


TIMED_CALLS = ("put_file", "put_bytes", "get_file", "get_bytes")


class _TimedCalls:
    """A proxy that times the object transfers of ``target`` as ``name``."""

    def __init__(self, target: Any, name: str) -> None:
        self._target = target
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if attr not in TIMED_CALLS:
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            with span(self._name):
                return value(*args, **kwargs)

        return timed


def timed_store(store: T, name: str) -> T:
    """``store`` whose uploads and downloads are timed as ``name`` (same interface)."""
    return cast(T, _TimedCalls(store, name))
