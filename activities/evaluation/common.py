"""Helpers shared by the evaluate and export activities: weights cache and scratch space."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from activities.contracts.evaluation import WeightsRef
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.infra.weights_cache import cached_weights


def fetch_weights(store: ObjectStore, settings: Settings, ref: WeightsRef, suffix: str) -> Path:
    """The object ``ref`` in the local content-addressed weights cache, verified.

    A cached file is re-hashed before reuse; a download is verified against ``ref.sha256``
    (IntegrityError, non-retryable, on mismatch).
    """
    cached = cached_weights(
        store, settings, bucket=ref.bucket, key=ref.key, sha256=ref.sha256, suffix=suffix
    )
    return cached.path


@contextmanager
def scratch_dir(settings: Settings, prefix: str) -> Iterator[Path]:
    """A fresh directory under ``{cache_dir}/work``, removed (with its contents) on exit."""
    work = settings.cache_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=work))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
