"""Object store over the ``minio`` SDK (MinIO, S3, R2, or moto's server in tests).

Every object we write carries its sha256 in user metadata (``x-amz-meta-sha256``) and every
download of such an object is verified against it. Transient network errors are retried with
exponential backoff; configuration errors (bad credentials, missing bucket) are raised at once
as :class:`~activities.infra.errors.ConfigurationError` with a message naming the fix.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error

from activities.infra.errors import (
    ConfigurationError,
    IntegrityError,
    NotFoundError,
    TransientStorageError,
    UnsafeKeyError,
)
from activities.infra.settings import Settings

log = logging.getLogger(__name__)

SHA256_META = "sha256"
_SHA256_HEADER = "x-amz-meta-sha256"
_CHUNK = 1024 * 1024
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
_TRANSIENT_CODES = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"}

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """What we know about one stored object."""

    key: str
    size: int
    etag: str
    sha256: str | None = None


def safe_relative_path(key: str) -> PurePosixPath:
    """The key as a relative path that cannot escape a target directory.

    Rejects absolute keys, ``..`` segments, backslashes and empty keys with UnsafeKeyError.
    """
    if not key or "\\" in key or "\x00" in key:
        raise UnsafeKeyError(f"unsafe object key {key!r}: empty, backslash or NUL")
    path = PurePosixPath(key)
    if path.is_absolute() or key.startswith("/"):
        raise UnsafeKeyError(f"unsafe object key {key!r}: absolute path")
    if any(part in ("..", ".") for part in key.split("/")):
        raise UnsafeKeyError(f"unsafe object key {key!r}: '..' or '.' segment")
    return path


def safe_join(directory: Path, key: str) -> Path:
    """``directory / key`` after checking the key cannot escape ``directory``."""
    return directory / Path(*safe_relative_path(key).parts)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    def from_settings(cls, settings: Settings, **kwargs: object) -> ObjectStore:
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
        return cls(client, endpoint=settings.s3_endpoint, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ error policy
    def _call(self, what: str, bucket: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries on transient failures and typed errors otherwise."""
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except S3Error as exc:
                if exc.code in _AUTH_CODES:
                    raise ConfigurationError(
                        f"S3 refused the credentials at {self.endpoint} ({exc.code}) while "
                        f"trying to {what}: check SENTINEL_S3_ACCESS_KEY / SENTINEL_S3_SECRET_KEY"
                    ) from None
                if exc.code == "NoSuchBucket":
                    raise ConfigurationError(
                        f"bucket {bucket!r} does not exist at {self.endpoint}: create it or set "
                        "the SENTINEL_*_BUCKET settings"
                    ) from None
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    raise NotFoundError(
                        f"no object {exc.object_name or ''!s} in {bucket!r}: cannot {what}"
                    ) from None
                if exc.code not in _TRANSIENT_CODES or attempt == self.max_attempts:
                    if exc.code in _TRANSIENT_CODES:
                        raise TransientStorageError(
                            f"S3 {exc.code} while trying to {what}"
                        ) from exc
                    raise
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt == self.max_attempts:
                    raise TransientStorageError(
                        f"S3 at {self.endpoint} unreachable while trying to {what}: {exc}"
                    ) from exc
            log.warning(
                "transient S3 failure (%s), attempt %d/%d", what, attempt, self.max_attempts
            )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

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
            raise ConfigurationError(
                f"bucket {bucket!r} does not exist at {self.endpoint}: create it or set the "
                "SENTINEL_*_BUCKET settings"
            )

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

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        keys = [info.key for info in self.list(bucket, prefix)]
        for key in keys:
            self.delete(bucket, key)
        return len(keys)

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

    def list(
        self, bucket: str, prefix: str = "", *, recursive: bool = True
    ) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order (no sha256: S3 listings do not carry it)."""

        def fetch() -> list[ObjectInfo]:
            return [
                ObjectInfo(o.object_name or "", o.size or 0, (o.etag or "").strip('"'))
                for o in self.client.list_objects(bucket, prefix=prefix, recursive=recursive)
                if o.object_name and not o.is_dir
            ]

        yield from self._call(f"list {prefix!r}", bucket, fetch)

    def get_bytes(self, bucket: str, key: str, *, expected_sha256: str | None = None) -> bytes:
        """Read ``key`` fully, verifying its sha256 (recorded, or ``expected_sha256``)."""

        def get() -> tuple[bytes, str | None]:
            response = self.client.get_object(bucket, key)
            try:
                return response.read(), response.headers.get(_SHA256_HEADER)
            finally:
                response.close()
                response.release_conn()

        data, recorded = self._call(f"read {key}", bucket, get)
        self._verify(bucket, key, sha256_bytes(data), recorded, expected_sha256)
        return data

    def get_file(
        self, bucket: str, key: str, dest: Path, *, expected_sha256: str | None = None
    ) -> str:
        """Download ``key`` to ``dest`` atomically, verified; returns the sha256."""
        dest.parent.mkdir(parents=True, exist_ok=True)

        def get() -> tuple[str, str | None, Path]:
            response = self.client.get_object(bucket, key)
            digest = hashlib.sha256()
            fd, tmp_name = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
            )
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.stream(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                return digest.hexdigest(), response.headers.get(_SHA256_HEADER), Path(tmp_name)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
            finally:
                response.close()
                response.release_conn()

        actual, recorded, tmp = self._call(f"download {key}", bucket, get)
        try:
            self._verify(bucket, key, actual, recorded, expected_sha256)
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
        return actual

    @staticmethod
    def _verify(
        bucket: str, key: str, actual: str, recorded: str | None, expected: str | None
    ) -> None:
        for label, want in (("expected", expected), ("recorded", recorded)):
            if want and want != actual:
                raise IntegrityError(
                    f"{bucket}/{key} failed verification: sha256 {actual[:12]}… != "
                    f"{label} {want[:12]}… (object corrupted or tampered)"
                )

    def download_many(
        self,
        bucket: str,
        items: Iterable[tuple[str, str | None]],
        dest_dir: Path,
        *,
        strip_prefix: str = "",
        on_done: Callable[[int], None] | None = None,
    ) -> list[Path]:
        """Download ``(key, expected_sha256)`` pairs under ``dest_dir`` with a bounded pool.

        The local path of each object is its key minus ``strip_prefix``; unsafe keys are
        rejected before anything is downloaded. ``on_done(n)`` is called with the running count.
        """
        planned: list[tuple[str, str | None, Path]] = []
        for key, sha in items:
            relative = key[len(strip_prefix) :] if key.startswith(strip_prefix) else key
            planned.append((key, sha, safe_join(dest_dir, relative)))
        done = 0
        paths: list[Path] = []
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            futures = [
                pool.submit(self.get_file, bucket, key, path, expected_sha256=sha)
                for key, sha, path in planned
            ]
            try:
                for future in as_completed(futures):
                    future.result()
                    done += 1
                    if on_done is not None:
                        on_done(done)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        paths = [path for _, _, path in planned]
        return paths
