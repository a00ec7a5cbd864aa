"""Weights on local disk, by digest: each worker downloads a given ``.pt`` once.

``{cache_dir}/weights/{sha256}{suffix}`` holds a file whose content hashes to its name. A
cached file is hashed again before every use (its digest is what vouches for it: nothing
unpickles bytes that were not checked), and one lock per digest makes concurrent activities of
one worker wait for a single download instead of each fetching the file.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from activities.infra.files import sha256_file
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class CachedWeights:
    """A verified local copy, and whether this call downloaded it (False: it was cached)."""

    path: Path
    sha256: str
    downloaded: bool


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path), threading.Lock())


def cache_path(settings: Settings, sha256: str, suffix: str = ".pt") -> Path:
    """Where weights with this digest are cached on this worker."""
    return settings.cache_dir / "weights" / f"{sha256}{suffix}"


def cached_weights(
    store: ObjectStore,
    settings: Settings,
    *,
    bucket: str,
    key: str,
    sha256: str,
    suffix: str = ".pt",
) -> CachedWeights:
    """``bucket/key`` as a local file whose bytes hash to ``sha256``; downloaded only if needed.

    A download that does not match ``sha256`` raises
    :class:`~activities.infra.errors.IntegrityError` (non-retryable) and leaves nothing in the
    cache; a cached copy that no longer matches (disk corruption, a hand edit) is replaced.
    """
    path = cache_path(settings, sha256, suffix)
    with _lock_for(path):
        if path.is_file():
            if sha256_file(path) == sha256:
                log.info("weights %s… from the local cache (%s)", sha256[:12], key)
                return CachedWeights(path, sha256, downloaded=False)
            log.warning("cached weights %s do not match their digest: downloading again", path)
            path.unlink(missing_ok=True)
        store.get_file(bucket, key, path, expected_sha256=sha256)
        log.info("weights %s… downloaded from %s/%s into the cache", sha256[:12], bucket, key)
        return CachedWeights(path, sha256, downloaded=True)
