"""Typed errors. Bad input and configuration errors are final: retrying cannot fix them.

Activities raise these; :func:`as_application_error` turns them into Temporal
``ApplicationError`` with the class name as ``type`` and ``non_retryable`` set, so the
workflow fails fast with the message instead of retrying for hours.
"""

from __future__ import annotations

import errno
import functools
import inspect
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from temporalio.exceptions import ApplicationError


class SentinelError(Exception):
    """Base of our errors. ``retryable`` tells Temporal whether another attempt may help."""

    retryable: bool = True


class BadInputError(SentinelError):
    """The request or the data it names is wrong (unknown format, too few images, ...)."""

    retryable = False


class ConfigurationError(SentinelError):
    """The deployment is wrong: bad credentials, missing bucket, unreachable endpoint name."""

    retryable = False


class UnsafeKeyError(BadInputError):
    """An object key would escape its target directory (``..``, absolute, backslashes)."""


class IntegrityError(SentinelError):
    """Content does not match its recorded sha256 (tampered or corrupted object)."""

    retryable = False


class NotFoundError(BadInputError):
    """A named object, snapshot, model or version does not exist."""


class TransientStorageError(SentinelError):
    """Object storage failed after local retries; Temporal may retry the activity."""


class TemporalLookupError(SentinelError):
    """An activity's question to Temporal (describe a workflow) failed; another attempt may
    succeed."""


class ObjectTooLargeError(BadInputError):
    """An object read whole into memory (COCO JSON, verified list, manifest) is over its cap."""

    def __init__(self, bucket: str, key: str, size: int, limit: int) -> None:
        super().__init__(
            f"{bucket}/{key} is {size / 2**20:.1f} MiB, over the {limit / 2**20:.1f} MiB limit "
            "for objects read whole (SENTINEL_MAX_DOCUMENT_MB): split it or raise the limit"
        )


class LocalDiskFullError(SentinelError):
    """The worker's local disk (cache, work directories) is full: a problem of this machine,
    not of object storage. Final: retrying the same work on a full disk only fails again."""

    retryable = False


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> LocalDiskFullError | None:
    """The :class:`LocalDiskFullError` that ``exc`` means, or None when it is something else."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        where = f" writing {exc.filename}" if exc.filename else ""
        return LocalDiskFullError(
            f"local disk full{where} ({exc.strerror}): free space on this worker or lower "
            "SENTINEL_CACHE_MAX_GB"
        )
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        return LocalDiskFullError(
            f"local disk full (cache index: {exc}): free space on this worker or lower "
            "SENTINEL_CACHE_MAX_GB"
        )
    return None


def as_application_error(exc: SentinelError) -> ApplicationError:
    """Temporal form of one of our errors (type = class name, non-retryable when final)."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable)


def _translated(exc: Exception) -> ApplicationError | None:
    if isinstance(exc, SentinelError):
        return as_application_error(exc)
    full = disk_full(exc)
    return as_application_error(full) if full is not None else None


P = ParamSpec("P")
R = TypeVar("R")


@overload
def translate_errors(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def translate_errors(fn: Callable[P, R]) -> Callable[P, R]: ...
def translate_errors(fn: Callable[P, Any]) -> Callable[P, Any]:
    """Decorator for activity functions: SentinelError -> ApplicationError.

    A full local disk (``ENOSPC``/``EDQUOT`` anywhere, SQLite's "disk is full") becomes a
    :class:`LocalDiskFullError` too. Keeps the signature (``functools.wraps``) and the
    sync/async kind Temporal inspects.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                translated = _translated(exc)
                if translated is None:
                    raise
                raise translated from exc

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            translated = _translated(exc)
            if translated is None:
                raise
            raise translated from exc

    return wrapper
