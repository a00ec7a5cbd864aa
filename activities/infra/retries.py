"""The object store's error policy: what is retried, and what each S3 error means to us.

Transient failures (network, throttling, a server error) are retried with jittered
exponential backoff; a full local disk (while downloading) is a
:class:`~activities.infra.errors.LocalDiskFullError` at once, never "S3 unreachable";
everything else becomes a typed error at once: bad credentials and
missing buckets a :class:`ConfigurationError` naming the fix, a missing object a
:class:`NotFoundError`, transient failures that outlast the attempts a
:class:`TransientStorageError`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import urllib3
from minio.error import S3Error

from activities.infra.errors import (
    ConfigurationError,
    NotFoundError,
    TransientStorageError,
    disk_full,
)

log = logging.getLogger(__name__)

AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
TRANSIENT_CODES = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"}
MISSING_OBJECT_CODES = {"NoSuchKey", "NoSuchObject"}
MAX_BACKOFF_SECONDS = 5.0

T = TypeVar("T")


def missing_bucket(bucket: str, endpoint: str) -> ConfigurationError:
    """The error for a bucket that does not exist."""
    return ConfigurationError(
        f"bucket {bucket!r} does not exist at {endpoint}: create it or set the "
        "SENTINEL_*_BUCKET settings"
    )


def _typed(exc: S3Error, what: str, bucket: str, endpoint: str) -> Exception | None:
    """Our error for an S3 error that retrying cannot fix; None when it is transient."""
    if exc.code in AUTH_CODES:
        return ConfigurationError(
            f"S3 refused the credentials at {endpoint} ({exc.code}) while "
            f"trying to {what}: check SENTINEL_S3_ACCESS_KEY / SENTINEL_S3_SECRET_KEY"
        )
    if exc.code == "NoSuchBucket":
        return missing_bucket(bucket, endpoint)
    if exc.code in MISSING_OBJECT_CODES:
        return NotFoundError(f"no object {exc.object_name or ''!s} in {bucket!r}: cannot {what}")
    return None


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    bucket: str,
    endpoint: str,
    max_attempts: int,
    backoff_seconds: float,
) -> T:
    """Run ``fn`` with retries on transient failures and typed errors otherwise.

    ``what`` completes "while trying to ..." in messages. An S3 error that is neither ours nor
    transient (e.g. a failed precondition) is raised as it is, for the caller to interpret.
    """
    delay = backoff_seconds
    for attempt in range(1, max_attempts + 1):
        try:
            return fn()
        except S3Error as exc:
            typed = _typed(exc, what, bucket, endpoint)
            if typed is not None:
                raise typed from None
            if exc.code not in TRANSIENT_CODES:
                raise
            if attempt == max_attempts:
                raise TransientStorageError(f"S3 {exc.code} while trying to {what}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if (full := disk_full(exc)) is not None:  # our disk, not the store: never retried
                raise full from exc
            if attempt == max_attempts:
                raise TransientStorageError(
                    f"S3 at {endpoint} unreachable while trying to {what}: {exc}"
                ) from exc
        log.warning("transient S3 failure (%s), attempt %d/%d", what, attempt, max_attempts)
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, MAX_BACKOFF_SECONDS)
    raise AssertionError("unreachable")
