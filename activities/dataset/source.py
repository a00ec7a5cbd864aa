"""A listed source prefix and cached, bounded access to its objects (used by assembly).

The listing is held once (relative key -> etag and size, :class:`~.verified.Listed`). Objects
are resolved to their content in chunks of ``CHUNK`` keys (cache lookup, then one parallel
download of what is missing), so no step builds a second copy of every key, and progress is
reported (heartbeats) after each chunk. Documents read whole are refused over their cap by
their listed size, before anything is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from activities.dataset.cache import ObjectCache, Wanted
from activities.dataset.verified import Listed
from activities.infra.errors import NotFoundError, ObjectTooLargeError, TransientStorageError
from activities.infra.heartbeat import Progress
from activities.infra.storage import ObjectStore

CHUNK = 2000
"""Keys resolved (looked up in the cache, downloaded when missing) per step."""


@dataclass
class SourceAccess:
    """The listed prefix and cached access to its objects."""

    store: ObjectStore
    cache: ObjectCache
    bucket: str
    prefix: str
    objects: dict[str, Listed]
    progress: Progress
    max_document_bytes: int
    downloaded: int = 0

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    def shas(self, rels: Iterable[str], stage: str) -> dict[str, str]:
        """Relative key -> sha256 of each object, downloading those not cached yet.

        ``progress(stage, done, missing)`` counts the downloads (first with 0).
        """
        unique = list(dict.fromkeys(rels))
        found: dict[str, str] = {}
        for start in range(0, len(unique), CHUNK):
            found.update(self._cached(unique[start : start + CHUNK]))
        missing = [rel for rel in unique if rel not in found]
        self.progress(stage, 0, len(missing))
        for start in range(0, len(missing), CHUNK):
            found.update(self._download(missing[start : start + CHUNK], stage, start, len(missing)))
        return found

    def _cached(self, rels: list[str]) -> dict[str, str]:
        """The objects of ``rels`` whose content the cache holds (by etag)."""
        cut = len(self.prefix) + 1
        cached = self.cache.lookup(
            self.store, self.bucket, [(self.key(r), self.objects[r].etag) for r in rels]
        )
        return {key[cut:]: sha for key, sha in cached.items()}

    def _download(self, rels: list[str], stage: str, done: int, total: int) -> dict[str, str]:
        """One chunk of missing objects, downloaded in parallel into the cache."""
        cut = len(self.prefix) + 1

        def progress(stage: str, fetched: int, _: int) -> None:
            if fetched:  # the chunk's opening call (0) was reported for the whole download
                self.progress(stage, done + fetched, total)

        wanted = [Wanted(self.key(r), self.objects[r].etag) for r in rels]
        try:
            fetched = self.cache.fetch(
                self.store, self.bucket, wanted, progress=progress, stage=stage
            )
        except NotFoundError as exc:  # deleted since the listing: a new attempt lists again
            raise TransientStorageError(f"source changed during assembly: {exc}") from exc
        self.downloaded += len(rels)
        return {key[cut:]: sha for key, sha in fetched.items()}

    def fetch(self, rels: list[str]) -> dict[str, bytes]:
        """Bytes of small objects (labels, data.yaml, COCO JSON) by relative key.

        Each is read whole: one listed over ``max_document_bytes`` is an ObjectTooLargeError.
        """
        for rel in rels:
            size = self.objects[rel].size
            if size > self.max_document_bytes:
                raise ObjectTooLargeError(self.bucket, self.key(rel), size, self.max_document_bytes)
        return {
            rel: self.cache.path(sha).read_bytes() for rel, sha in self.shas(rels, "labels").items()
        }
