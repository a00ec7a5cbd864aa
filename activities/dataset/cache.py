"""Local content-addressed object cache shared by assembly and materialization.

``{cache_dir}/objects/{sha[:2]}/{sha}`` holds verified bytes, written atomically
(download to a private temporary folder, then ``os.replace``), so a killed process leaves at
most a stray temporary folder, never a wrong object. ``{cache_dir}/index.sqlite``
remembers which sha256 an ``(endpoint, bucket, key, etag)`` had, so a re-assembly does not
download an object whose content it has already seen (S3 listings carry etags, not sha256),
and facts derived from content (image checks), so it does not decode old images again.
SQLite keeps the index one file, safe for several worker processes sharing a cache.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from activities.infra.heartbeat import Progress, no_progress
from activities.infra.storage import ObjectStore, sha256_file

STALE_SECONDS = 6 * 3600


def sweep_stale(directory: Path, pattern: str, max_age: float = STALE_SECONDS) -> int:
    """Remove ``directory/pattern`` folders older than ``max_age`` (left by killed processes)."""
    removed = 0
    now = time.time()
    for path in directory.glob(pattern):
        try:
            if path.is_dir() and now - path.stat().st_mtime > max_age:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


@dataclass(frozen=True)
class Wanted:
    """One object to have in the cache: its key, etag (for the index) and sha256 if known."""

    key: str
    etag: str = ""
    sha256: str | None = None


class ObjectCache:
    """Verified, content-addressed local copies of objects."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir
        self.objects = cache_dir / "objects"
        self.index_path = cache_dir / "index.sqlite"
        self.tmp = cache_dir / "tmp"
        self._dirs: set[Path] = set()

    def path(self, sha256: str) -> Path:
        """Where the object with content ``sha256`` lives (whether or not it is there)."""
        return self.objects / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    # ------------------------------------------------------------------ etag index
    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.index_path, timeout=60)
        db.execute("CREATE TABLE IF NOT EXISTS etags (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS facts (id TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return db

    def _select(self, table: str, ids: list[str]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        column = "sha256" if table == "etags" else "value"
        with closing(self._connect()) as db:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT id, {column} FROM {table} WHERE id IN ({marks})"
                rows.extend(db.execute(query, chunk))
        return rows

    def _upsert(self, table: str, rows: list[tuple[str, str]]) -> None:
        if rows:
            with closing(self._connect()) as db, db:
                db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", rows)

    def load_facts(self, namespace: str, shas: Iterable[str]) -> dict[str, str]:
        """Facts derived from content (e.g. an image check), by sha256, for ``namespace``."""
        wanted = {f"{namespace}\n{sha}": sha for sha in shas}
        return {wanted[i]: value for i, value in self._select("facts", list(wanted))}

    def save_facts(self, namespace: str, facts: dict[str, str]) -> None:
        """Remember facts (pure functions of content: valid as long as the namespace holds)."""
        self._upsert("facts", [(f"{namespace}\n{sha}", value) for sha, value in facts.items()])

    @staticmethod
    def _id(store: ObjectStore, bucket: str, key: str, etag: str) -> str:
        return f"{store.endpoint}\n{bucket}\n{key}\n{etag}"

    def touch(self, sha256: str) -> bool:
        """Mark a cached object as used now (its mtime is its recency for eviction, see
        :mod:`.cache_bound`); False when it is not cached."""
        try:
            os.utime(self.path(sha256))
        except FileNotFoundError:
            return False
        return True

    def lookup(
        self, store: ObjectStore, bucket: str, items: Iterable[tuple[str, str]]
    ) -> dict[str, str]:
        """``key -> sha256`` for the ``(key, etag)`` pairs whose content is cached (each
        found object is marked as used now)."""
        wanted = {self._id(store, bucket, key, etag): key for key, etag in items if etag}
        rows = self._select("etags", list(wanted)) if wanted else []
        return {wanted[row_id]: sha for row_id, sha in rows if self.touch(sha)}

    def _remember(
        self, store: ObjectStore, bucket: str, entries: list[tuple[str, str, str]]
    ) -> None:
        self._upsert("etags", [(self._id(store, bucket, k, e), sha) for k, e, sha in entries if e])

    # ------------------------------------------------------------------ objects
    def _adopt(self, path: Path, sha: str) -> None:
        target = self.path(sha)
        if target.parent not in self._dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(target.parent)
        os.replace(path, target)  # same content whoever wins a race

    def fetch(
        self,
        store: ObjectStore,
        bucket: str,
        wanted: Sequence[Wanted],
        *,
        progress: Progress = no_progress,
        stage: str = "downloaded",
    ) -> dict[str, str]:
        """Download ``wanted`` in parallel (verified) into the cache; returns key -> sha256.

        Objects with a known ``sha256`` are verified against it (and against the sha256 the
        store recorded at upload, when present); the others are hashed after download.
        ``progress(stage, done, len(wanted))`` is called first with 0, then after each object.
        """
        total = len(wanted)
        progress(stage, 0, total)
        if not wanted:
            return {}
        self.tmp.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.tmp, "fetch-*")
        work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="fetch-"))
        try:
            paths = store.download_many(
                bucket,
                [(w.key, w.sha256) for w in wanted],
                work,
                on_done=lambda done: progress(stage, done, total),
            )
            result: dict[str, str] = {}
            for item, path in zip(wanted, paths, strict=True):
                sha = item.sha256 or sha256_file(path)
                if path.exists():
                    self._adopt(path, sha)
                result[item.key] = sha
            self._remember(store, bucket, [(w.key, w.etag, result[w.key]) for w in wanted])
            return result
        finally:
            shutil.rmtree(work, ignore_errors=True)
