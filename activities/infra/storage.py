"""Object store over the ``minio`` SDK (MinIO, S3, R2, or moto's server in tests).

Every object we write carries its sha256 in user metadata (``x-amz-meta-sha256``) and every
download of such an object is verified against it. Transient network errors are retried with
exponential backoff; configuration errors (bad credentials, missing bucket) are raised at once
as :class:`~activities.infra.errors.ConfigurationError` with a message naming the fix (the
policy: :mod:`activities.infra.retries`). Key safety lives in :mod:`activities.infra.keys`,
digests in :mod:`activities.infra.files`; both are re-exported here.

Over 300 lines on purpose: the one class every stage uses, with its whole API (buckets,
writes, paged listings, verified and size-capped reads, deletes) under one error policy.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypedDict, TypeVar, Unpack

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from activities.infra.errors import (
    ConfigurationError,
    IntegrityError,
    ObjectTooLargeError,
    TransientStorageError,
)
from activities.infra.files import CHUNK, sha256_bytes, sha256_file, verify_sha256, write_beside
from activities.infra.keys import safe_join, safe_relative_path
from activities.infra.pool import run_bounded
from activities.infra.retries import call_with_retries, missing_bucket
from activities.infra.settings import Settings

__all__ = [
    "SHA256_META",
    "ObjectInfo",
    "ObjectStore",
    "StoreOptions",
    "safe_join",
    "safe_relative_path",
    "sha256_bytes",
    "sha256_file",
]

SHA256_META = "sha256"
_SHA256_HEADER = "x-amz-meta-sha256"
LIST_PAGE = 1000
"""Keys per listing request (the S3 maximum): a listing holds one page in memory at a time."""
DELETE_BATCH = 1000

T = TypeVar("T")


class StoreOptions(TypedDict, total=False):
    """Tuning keywords of :class:`ObjectStore` that :meth:`ObjectStore.from_settings` forwards."""

    max_attempts: int
    backoff_seconds: float
    max_workers: int


@dataclass(frozen=True)
class ObjectInfo:
    """What we know about one stored object."""

    key: str
    size: int
    etag: str
    sha256: str | None = None
    modified: datetime | None = None  # listings only


class ObjectStore:
    """Typed, verified, retrying access to S3-compatible object storage."""

    def __init__(
        self,
        client: Minio,
        *,
        endpoint: str = "",
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        max_workers: int = 16,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_workers = max_workers

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Unpack[StoreOptions]) -> ObjectStore:
        """A store for the configured endpoint and credentials."""
        if settings.s3_access_key is None or settings.s3_secret_key is None:
            raise ConfigurationError(
                "S3 credentials missing: set SENTINEL_S3_ACCESS_KEY and SENTINEL_S3_SECRET_KEY "
                "(or the *_FILE variants)"
            )
        # Our own backoff handles retries; urllib3 only retries connects briefly.
        http = urllib3.PoolManager(
            maxsize=32,
            timeout=urllib3.Timeout(connect=5, read=120),
            retries=urllib3.Retry(total=1, connect=1, read=0, backoff_factor=0.1),
        )
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )
        return cls(client, endpoint=settings.s3_endpoint, **kwargs)

    # ------------------------------------------------------------------ error policy
    def _call(self, what: str, bucket: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the store's error policy (:mod:`activities.infra.retries`)."""
        return call_with_retries(
            fn,
            what=what,
            bucket=bucket,
            endpoint=self.endpoint,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    # ------------------------------------------------------------------ buckets
    def ensure_bucket(self, bucket: str) -> None:
        """Create ``bucket`` if it does not exist (idempotent)."""

        def create() -> None:
            if not self.client.bucket_exists(bucket):
                self.client.make_bucket(bucket)

        self._call("create bucket", bucket, create)

    def check_bucket(self, bucket: str) -> None:
        """Raise ConfigurationError unless ``bucket`` exists and the credentials work."""
        if not self._call("check bucket", bucket, lambda: self.client.bucket_exists(bucket)):
            raise missing_bucket(bucket, self.endpoint)

    # ------------------------------------------------------------------ writes
    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Store ``data`` at ``key`` with its sha256 in metadata.

        ``if_absent`` makes the write conditional (``If-None-Match: *``): a second writer of the
        same key gets FileExistsError instead of overwriting.
        """
        safe_relative_path(key)
        digest = sha256_bytes(data)
        headers: dict[str, str] = {_SHA256_HEADER: digest}
        if if_absent:
            headers["If-None-Match"] = "*"

        def put() -> ObjectInfo:
            # The low-level PUT keeps If-None-Match a real header (put_object would turn it
            # into user metadata); small payloads only, so one request is right anyway.
            result = self.client._put_object(
                bucket, key, data, headers={"Content-Type": content_type, **headers}
            )
            return ObjectInfo(key, len(data), result.etag or "", digest)

        try:
            return self._call(f"write {key}", bucket, put)
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(f"{bucket}/{key} already exists") from None
            raise

    def put_file(
        self, bucket: str, key: str, path: Path, *, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Upload a local file with its sha256 in metadata."""
        safe_relative_path(key)
        digest = sha256_file(path)
        size = path.stat().st_size

        def put() -> ObjectInfo:
            result = self.client.fput_object(
                bucket, key, str(path), content_type=content_type, metadata={SHA256_META: digest}
            )
            return ObjectInfo(key, size, result.etag or "", digest)

        return self._call(f"upload {key}", bucket, put)

    def delete(self, bucket: str, key: str) -> None:
        self._call(f"delete {key}", bucket, lambda: self.client.remove_object(bucket, key))

    def delete_many(self, bucket: str, keys: Iterable[str]) -> int:
        """Delete ``keys`` (multi-object deletes of up to 1000 keys); returns how many."""
        deleted = 0
        pending = iter(keys)
        while batch := list(itertools.islice(pending, DELETE_BATCH)):

            def remove(batch: builtins.list[str] = batch) -> None:
                errors = self.client.remove_objects(bucket, [DeleteObject(k) for k in batch])
                for error in errors:  # lazy: iterating sends the request
                    if error.code not in ("NoSuchKey", "NoSuchObject"):
                        raise TransientStorageError(
                            f"S3 did not delete {bucket}/{error.name}: {error.code} "
                            f"{error.message or ''}"
                        )

            self._call(f"delete {len(batch)} objects", bucket, remove)
            deleted += len(batch)
        return deleted

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        return self.delete_many(bucket, (info.key for info in self.list(bucket, prefix)))

    # ------------------------------------------------------------------ reads
    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        """Size, etag and recorded sha256 of ``key``, or None when it does not exist."""

        def head() -> ObjectInfo | None:
            try:
                obj = self.client.stat_object(bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                    return None
                raise
            meta = {k.lower(): v for k, v in (obj.metadata or {}).items()}
            return ObjectInfo(
                key, obj.size or 0, (obj.etag or "").strip('"'), meta.get(_SHA256_HEADER)
            )

        return self._call(f"stat {key}", bucket, head)

    def exists(self, bucket: str, key: str) -> bool:
        return self.stat(bucket, key) is not None

    def _list_page(
        self, bucket: str, prefix: str, after: str | None, page_size: int, recursive: bool
    ) -> builtins.list[ObjectInfo]:
        """One listing request: up to ``page_size`` entries after ``after`` (folders have
        ``size == -1`` and a key ending in ``/``)."""
        entries = self.client._list_objects(
            bucket,
            prefix=prefix,
            delimiter=None if recursive else "/",
            max_keys=page_size,
            start_after=after,
            encoding_type="url",
        )
        return [
            ObjectInfo(
                o.object_name or "",
                -1 if o.is_dir else o.size or 0,
                (o.etag or "").strip('"'),
                modified=o.last_modified,
            )
            for o in itertools.islice(entries, page_size)  # one request: the next is never sent
        ]

    def _pages(
        self, bucket: str, prefix: str, page_size: int, recursive: bool
    ) -> Iterator[ObjectInfo]:
        after: str | None = None
        while True:
            page = self._call(
                f"list {prefix!r}",
                bucket,
                functools.partial(self._list_page, bucket, prefix, after, page_size, recursive),
            )
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].key  # a failed page is retried from here, not from the start

    def list(
        self, bucket: str, prefix: str = "", *, page_size: int = LIST_PAGE
    ) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order (no sha256: S3 listings do not carry it).

        Paged: one request of ``page_size`` keys at a time, only that page held in memory.
        """
        yield from self._pages(bucket, prefix, page_size, recursive=True)

    def list_folders(
        self, bucket: str, prefix: str = "", *, page_size: int = LIST_PAGE
    ) -> Iterator[str]:
        """The "folders" directly under ``prefix`` (``runs/a/``, ``runs/b/``...), paged."""
        for info in self._pages(bucket, prefix, page_size, recursive=False):
            if info.size == -1:
                yield info.key

    def get_bytes(
        self,
        bucket: str,
        key: str,
        *,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
    ) -> bytes:
        """Read ``key`` fully, verifying its sha256 (recorded, or ``expected_sha256``).

        ``max_bytes`` caps what is read into memory: a larger object raises
        :class:`ObjectTooLargeError` (non-retryable) before its body is read.
        """

        def get() -> tuple[bytes, str | None]:
            response = self.client.get_object(bucket, key)
            try:
                if max_bytes is not None:
                    size = int(response.headers.get("Content-Length") or 0)
                    data = response.read(max_bytes + 1)  # a lying length cannot overrun it
                    if max(size, len(data)) > max_bytes:
                        raise ObjectTooLargeError(bucket, key, max(size, len(data)), max_bytes)
                    return data, response.headers.get(_SHA256_HEADER)
                return response.read(), response.headers.get(_SHA256_HEADER)
            finally:
                response.close()
                response.release_conn()

        data, recorded = self._call(f"read {key}", bucket, get)
        verify_sha256(f"{bucket}/{key}", sha256_bytes(data), recorded, expected_sha256)
        return data

    def get_file(
        self, bucket: str, key: str, dest: Path, *, expected_sha256: str | None = None
    ) -> str:
        """Download ``key`` to ``dest`` atomically, verified; returns the sha256."""
        dest.parent.mkdir(parents=True, exist_ok=True)

        def get() -> tuple[str, str | None, Path]:
            response = self.client.get_object(bucket, key)
            try:
                actual, tmp = write_beside(dest, response.stream(CHUNK))
                return actual, response.headers.get(_SHA256_HEADER), tmp
            finally:
                response.close()
                response.release_conn()

        actual, recorded, tmp = self._call(f"download {key}", bucket, get)
        try:
            verify_sha256(f"{bucket}/{key}", actual, recorded, expected_sha256)
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
        return actual

    def download_many(
        self,
        bucket: str,
        items: Iterable[tuple[str, str | None]],
        dest_dir: Path,
        *,
        strip_prefix: str = "",
        on_done: Callable[[int], None] | None = None,
    ) -> builtins.list[Path]:  # why: the ``list`` method shadows the builtin in this class
        """Download ``(key, expected_sha256)`` pairs under ``dest_dir`` with a bounded pool.

        The local path of each object is its key minus ``strip_prefix``; unsafe keys are
        rejected before anything is downloaded. ``on_done(n)`` is called with the running count.
        """
        planned: list[tuple[str, str | None, Path]] = []
        for key, sha in items:
            relative = key[len(strip_prefix) :] if key.startswith(strip_prefix) else key
            planned.append((key, sha, safe_join(dest_dir, relative)))
        run_bounded(
            [
                functools.partial(self.get_file, bucket, key, path, expected_sha256=sha)
                for key, sha, path in planned
            ],
            max_workers=self.max_workers,
            on_done=on_done,
        )
        return [path for _, _, path in planned]
