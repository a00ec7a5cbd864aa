"""``sentinel models pull`` and ``sentinel models report``: files out of the registry, verified.

Registered on the ``models`` group (:mod:`workflows.client.cli_models`) by
:func:`add_download_verbs`; :func:`run_download_verb` runs them. Both go through
:mod:`workflows.client.downloads` (Temporal access only; every file verified here against the
digest in the version's metadata).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from activities.infra.errors import IntegrityError
from workflows.client.downloads import Download, DownloadError

if TYPE_CHECKING:
    from workflows.client.api import SentinelClient
    from workflows.client.cli_args import Groups

DOWNLOAD_VERBS = frozenset({"pull", "report"})
EXIT_OK, EXIT_FAILED = 0, 1
console = Console()


def _which_version(parser: argparse.ArgumentParser) -> None:
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--version", type=int, help="version number")
    choice.add_argument(
        "--alias",
        default="production",
        choices=["production", "latest"],
        help="the version an alias points to (default: production)",
    )


def add_download_verbs(verbs: Groups) -> None:
    """``models pull`` and ``models report`` on the ``models`` group's sub-parsers."""
    pull = verbs.add_parser(
        "pull", help="download a version's model file, verified against its metadata digest"
    )
    pull.add_argument("model")
    _which_version(pull)
    pull.add_argument("--format", default="pt", choices=["pt", "onnx"], help="default: pt")
    pull.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    report = verbs.add_parser(
        "report",
        help="write a version's report.md and its pictures (evidence/) to a folder, verified",
    )
    report.add_argument("model")
    _which_version(report)
    report.add_argument("--out", type=Path, required=True, help="folder to write into")


def _describe(download: Download) -> str:
    marker = " (production)" if download.production else ""
    return f"{download.model} v{download.version}{marker}"


async def run_download_verb(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Run ``pull`` or ``report``; a refused (unverified) or failed download exits 1."""
    try:
        if args.verb == "pull":
            download = await sentinel.pull_model(
                args.model,
                args.output,
                model_format=args.format,
                version=args.version,
                alias=args.alias,
            )
            (file,) = download.files
            console.print(
                f"wrote {file.path} ({file.name} of {_describe(download)}, {file.size} bytes, "
                f"sha256 {file.sha256}: verified against the version's metadata)",
                soft_wrap=True,
            )
        else:
            download = await sentinel.download_report(
                args.model, args.out, version=args.version, alias=args.alias
            )
            total = sum(f.size for f in download.files)
            console.print(
                f"wrote {args.out / 'report.md'} and {len(download.files) - 1} pictures of "
                f"{_describe(download)} ({total} bytes, every file verified against the "
                "version's metadata)",
                soft_wrap=True,
            )
    except (IntegrityError, DownloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
