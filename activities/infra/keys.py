"""Object keys that cannot escape a directory when they become local paths."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from activities.infra.errors import UnsafeKeyError


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
