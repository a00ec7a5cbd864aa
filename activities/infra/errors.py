"""Typed errors. Bad input and configuration errors are final: retrying cannot fix them.

Activities raise these; :func:`as_application_error` turns them into Temporal
``ApplicationError`` with the class name as ``type`` and ``non_retryable`` set, so the
workflow fails fast with the message instead of retrying for hours.
"""

from __future__ import annotations

import functools
import inspect
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


def as_application_error(exc: SentinelError) -> ApplicationError:
    """Temporal form of one of our errors (type = class name, non-retryable when final)."""
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable)


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

    Keeps the signature (``functools.wraps``) and the sync/async kind Temporal inspects.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return await fn(*args, **kwargs)
            except SentinelError as exc:
                raise as_application_error(exc) from exc

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except SentinelError as exc:
            raise as_application_error(exc) from exc

    return wrapper
