"""Taking files of a version out of the registry: model files and the report with its pictures.

The client needs Temporal access only: ``DownloadLinksWorkflow`` returns time-limited GET links
signed by the workers (which hold the S3 credentials) with each file's sha256 from the
version's ``metadata.json``. Every file is streamed to a temporary file beside its target,
hashed on the way and verified against that digest *here*, on the user's machine; only then
is it renamed into place. A mismatch (object tampered with or corrupted in storage) raises
:class:`~activities.infra.errors.IntegrityError` and leaves nothing behind; for a report,
nothing at all is written unless every file verifies.
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from temporalio.client import Client

from activities.contracts.registry import (
    DownloadLink,
    DownloadLinksRequest,
    DownloadLinksResult,
    DownloadWhat,
)
from activities.infra.errors import IntegrityError
from activities.infra.files import CHUNK, verify_sha256, write_beside
from activities.infra.keys import safe_join
from activities.infra.settings import Settings
from workflows.registry_ops import DownloadLinksWorkflow

ModelFormat = Literal["pt", "onnx"]
MODEL_FILES: dict[ModelFormat, DownloadWhat] = {"pt": "model.pt", "onnx": "model.onnx"}
DOWNLOAD_TIMEOUT_SECONDS = 300.0


class DownloadError(RuntimeError):
    """A link could not be fetched (expired, unreachable S3 endpoint, HTTP error)."""


@dataclass(frozen=True)
class DownloadedFile:
    """One verified file on disk."""

    name: str
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Download:
    """What a pull or report download wrote, and which version it came from."""

    model: str
    version: int
    production: bool
    files: list[DownloadedFile]


def _stream(url: str, timeout: float) -> Iterator[bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            yield from iter(lambda: response.read(CHUNK), b"")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"S3 answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"S3 unreachable from here: {reason}") from None


def _fetch_verified(link: DownloadLink, dest: Path, timeout: float) -> Path:
    """``link`` downloaded next to ``dest`` and verified; returns the temporary file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        actual, tmp = write_beside(dest, _stream(link.url, timeout))
    except DownloadError as exc:
        raise DownloadError(f"cannot download {link.name}: {exc}") from None
    try:
        verify_sha256(link.name, actual, None, link.sha256)
    except IntegrityError as exc:
        tmp.unlink(missing_ok=True)
        raise IntegrityError(
            f"refusing {link.name}: {exc} (the version's metadata.json records "
            f"{link.sha256[:12]}…); nothing was written"
        ) from None
    return tmp


def download_all(
    links: list[tuple[DownloadLink, Path]], timeout: float = DOWNLOAD_TIMEOUT_SECONDS
) -> list[DownloadedFile]:
    """Download and verify every link; rename all into place only when all verified."""
    fetched: list[tuple[DownloadLink, Path, Path]] = []
    try:
        for link, dest in links:
            fetched.append((link, _fetch_verified(link, dest, timeout), dest))
    except BaseException:
        for _, tmp, _ in fetched:
            tmp.unlink(missing_ok=True)
        raise
    written = []
    for link, tmp, dest in fetched:
        os.replace(tmp, dest)
        written.append(DownloadedFile(link.name, dest, link.sha256, dest.stat().st_size))
    return written


class RegistryDownloads:
    """Downloads of :class:`~workflows.client.SentinelClient` (model files, reports)."""

    client: Client
    settings: Settings

    async def download_links(self, request: DownloadLinksRequest) -> DownloadLinksResult:
        """Time-limited links to the files ``request`` names, with their digests."""
        result: DownloadLinksResult = await self.client.execute_workflow(
            DownloadLinksWorkflow.run,
            request,
            id=f"download-{request.model}-{uuid.uuid4().hex[:12]}",
            task_queue=self.settings.cpu_task_queue,
        )
        return result

    async def pull_model(
        self,
        model: str,
        dest: Path,
        *,
        model_format: ModelFormat = "pt",
        version: int | None = None,
        alias: Literal["production", "latest"] = "production",
    ) -> Download:
        """Write ``model.pt`` or ``model.onnx`` of a version to ``dest``, verified.

        ``version`` or, without it, the version ``alias`` points to. Raises IntegrityError
        (nothing written) when the stored bytes differ from the metadata's digest.
        """
        links = await self.download_links(
            DownloadLinksRequest(
                model=model, version=version, alias=alias, what=MODEL_FILES[model_format]
            )
        )
        (link,) = links.files
        files = await asyncio.to_thread(download_all, [(link, Path(dest))])
        return Download(model, links.version, links.production, files)

    async def download_report(
        self,
        model: str,
        out_dir: Path,
        *,
        version: int | None = None,
        alias: Literal["production", "latest"] = "production",
    ) -> Download:
        """Write ``report.md`` and its pictures (``evidence/``) of a version into ``out_dir``.

        The report links its pictures relatively, so ``out_dir/report.md`` opens with them.
        """
        links = await self.download_links(
            DownloadLinksRequest(model=model, version=version, alias=alias, what="report")
        )
        out = Path(out_dir)
        planned = [(link, safe_join(out, link.name)) for link in links.files]
        files = await asyncio.to_thread(download_all, planned)
        return Download(model, links.version, links.production, files)
