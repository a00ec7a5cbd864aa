"""Local files: content digests and copies that are never seen half written."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from activities.infra.errors import IntegrityError

CHUNK = 1024 * 1024
"""Read and stream size of large files."""


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The sha256 (hex) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def atomic_copy(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` so that ``dest`` is never partially written.

    The copy goes to a temporary file next to ``dest`` and replaces it in one rename, so
    concurrent processes (and a killed one) leave either no file or a complete one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def verify_sha256(where: str, actual: str, recorded: str | None, expected: str | None) -> None:
    """IntegrityError unless ``actual`` equals ``expected`` and ``recorded`` (when given)."""
    for label, want in (("expected", expected), ("recorded", recorded)):
        if want and want != actual:
            raise IntegrityError(
                f"{where} failed verification: sha256 {actual[:12]}… != "
                f"{label} {want[:12]}… (object corrupted or tampered)"
            )


def write_beside(dest: Path, chunks: Iterable[bytes]) -> tuple[str, Path]:
    """Write ``chunks`` to a new temporary file next to ``dest``: ``(sha256, its path)``.

    The caller verifies the digest, then ``os.replace``\\ s the file onto ``dest`` (or deletes
    it); a failure while writing removes it.
    """
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest.hexdigest(), Path(tmp_name)
