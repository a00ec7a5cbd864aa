"""Typed errors: what an activity's failure becomes in Temporal (type, retryable)."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from temporalio.exceptions import ApplicationError

from activities.infra.errors import BadInputError, translate_errors


@translate_errors
def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device", "/cache/objects/ab/abc"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        sqlite3.OperationalError("database or disk is full"),
    ],
)
def test_a_full_local_disk_becomes_a_final_typed_error(exc: Exception) -> None:
    with pytest.raises(ApplicationError) as info:
        _raise(exc)
    assert (info.value.type, info.value.non_retryable) == ("LocalDiskFullError", True)
    assert "local disk full" in info.value.message
    assert "SENTINEL_CACHE_MAX_GB" in info.value.message


def test_other_errors_keep_their_meaning() -> None:
    with pytest.raises(ConnectionResetError):  # retryable by Temporal, as before
        _raise(ConnectionResetError(errno.ECONNRESET, "reset"))
    with pytest.raises(ApplicationError) as info:
        _raise(BadInputError("bad"))
    assert (info.value.type, info.value.non_retryable) == ("BadInputError", True)
