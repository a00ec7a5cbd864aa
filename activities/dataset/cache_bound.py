"""The local cache's bound (``SENTINEL_CACHE_MAX_GB``): least recently used first, never a
file in use.

What is bounded: the content-addressed objects (``{cache_dir}/objects``) and the materialized
snapshots (``{cache_dir}/datasets``), counted once per file on disk (a snapshot's images are
hard links to objects). Weights and training work directories are not counted.

What "in use" means, and how it is guarded (``fcntl.flock``: across threads and processes
sharing one cache directory, released by the kernel when a process dies):

* an assembly or a materialization reads and writes objects: it holds ``.objects.lock``
  shared for its duration; eviction takes it exclusively without waiting, so it evicts only
  when no such operation runs (the last one to finish evicts);
* a training, evaluation or export reads a materialized snapshot for minutes to days: the
  :class:`~activities.dataset.materialize.MaterializedDataset` it got holds the snapshot's
  lease (``{snapshot dir}.lease``, shared) until released; eviction removes a snapshot only
  while it holds that lease exclusively.

Recency: an object's mtime is its last use (touched when an assembly finds it cached), a
snapshot's lease file's mtime is its last use (touched on every lease). Eviction removes, in
that order, snapshots not leased and objects not linked into a remaining snapshot (removing
one of those would free nothing), until the cache is under its bound.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

OBJECTS_LOCK = ".objects.lock"
LEASE_SUFFIX = ".lease"


def _locked(path: Path, mode: int) -> IO[bytes] | None:
    """``path`` opened and flock-ed with ``mode``; None when ``LOCK_NB`` could not get it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), mode)
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


@contextmanager
def objects_in_use(cache_dir: Path) -> Iterator[None]:
    """Hold the cache's objects in use (shared): no eviction runs meanwhile."""
    handle = _locked(cache_dir / OBJECTS_LOCK, fcntl.LOCK_SH)
    try:
        yield
    finally:
        if handle is not None:
            handle.close()


def lease_path(root: Path) -> Path:
    return root.with_name(root.name + LEASE_SUFFIX)


def lease(root: Path) -> IO[bytes]:
    """A shared lease on the snapshot directory ``root`` (close the handle to release it);
    waits while an eviction of it is under way. Marks the snapshot as used now."""
    path = lease_path(root)
    handle = _locked(path, fcntl.LOCK_SH)
    assert handle is not None  # a blocking lock either succeeds or raises
    os.utime(path)
    return handle


@dataclass
class Eviction:
    """What one enforcement of the bound did."""

    before: int = 0
    after: int = 0
    objects: int = 0
    datasets: int = 0
    skipped: str = ""  # why nothing was evicted although over the bound


@dataclass(frozen=True)
class _Entry:
    last_use: float
    path: Path
    dataset: bool


def _files(root: Path) -> Iterator[os.stat_result]:
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                yield os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue


def usage(cache_dir: Path) -> int:
    """Bytes of objects and materialized snapshots, each file counted once (hard links)."""
    seen: set[int] = set()
    total = 0
    for stat in (*_files(cache_dir / "objects"), *_files(cache_dir / "datasets")):
        if stat.st_ino not in seen:
            seen.add(stat.st_ino)
            total += stat.st_size
    return total


def _entries(cache_dir: Path) -> list[_Entry]:
    """Snapshots (by lease time) and objects (by mtime), least recently used first."""
    entries: list[_Entry] = []
    for root in sorted((cache_dir / "datasets").glob("*/*")):
        if root.is_dir() and not root.name.startswith("."):
            lease_file = lease_path(root)
            stamp = lease_file if lease_file.exists() else root
            entries.append(_Entry(stamp.stat().st_mtime, root, True))
    for dirpath, _, names in os.walk(cache_dir / "objects"):
        for name in names:
            path = Path(dirpath, name)
            try:
                entries.append(_Entry(path.stat().st_mtime, path, False))
            except FileNotFoundError:
                continue
    entries.sort(key=lambda e: (e.last_use, str(e.path)))
    return entries


def _remove_dataset(root: Path) -> int:
    """Remove a snapshot directory unless leased; returns the bytes freed (-1: in use)."""
    handle = _locked(lease_path(root), fcntl.LOCK_EX | fcntl.LOCK_NB)
    if handle is None:
        return -1
    try:
        freed = sum(s.st_size for s in _files(root) if s.st_nlink == 1)
        shutil.rmtree(root, ignore_errors=True)
        return freed
    finally:
        handle.close()


def _remove_object(path: Path) -> int:
    """Remove an object unless a snapshot links it; returns the bytes freed (-1: linked)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0
    if stat.st_nlink > 1:
        return -1
    path.unlink(missing_ok=True)
    return stat.st_size


def _evict(entries: list[_Entry], max_bytes: int, result: Eviction) -> None:
    """Remove ``entries`` in order until under ``max_bytes``. An object linked into a snapshot
    waits: when that snapshot goes, it goes next (it is older than the snapshot's last use)."""
    linked: list[_Entry] = []
    for entry in entries:
        if result.after <= max_bytes:
            return
        if not entry.dataset:
            freed = _remove_object(entry.path)
            if freed < 0:
                linked.append(entry)
            else:
                result.after -= freed
                result.objects += 1
            continue
        freed = _remove_dataset(entry.path)
        if freed < 0:
            continue  # leased: in use
        result.after -= freed
        result.datasets += 1
        waiting, linked = linked, []
        for older in waiting:
            freed = _remove_object(older.path) if result.after > max_bytes else -1
            if freed < 0:
                linked.append(older)
            else:
                result.after -= freed
                result.objects += 1


def enforce_bound(cache_dir: Path, max_bytes: int | None) -> Eviction:
    """Evict least recently used snapshots and objects until ``cache_dir`` is under
    ``max_bytes`` (nothing when None). Never waits: when another assembly or materialization
    is using the objects, eviction is left to whichever finishes last."""
    result = Eviction()
    if max_bytes is None or not cache_dir.exists():
        return result
    result.before = result.after = usage(cache_dir)
    if result.before <= max_bytes:
        return result
    handle = _locked(cache_dir / OBJECTS_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if handle is None:
        result.skipped = "objects in use by another assembly or materialization"
        return result
    started = time.monotonic()
    try:
        _evict(_entries(cache_dir), max_bytes, result)
    finally:
        handle.close()
    if result.after > max_bytes:
        result.skipped = "everything left is in use"
    log.info(
        "cache %s: %.1f MiB -> %.1f MiB (bound %.1f MiB): evicted %d snapshots, %d objects "
        "in %.2fs%s", cache_dir, result.before / 2**20, result.after / 2**20, max_bytes / 2**20,
        result.datasets, result.objects, time.monotonic() - started,
        f" ({result.skipped})" if result.skipped else "",
    )  # fmt: skip
    return result
