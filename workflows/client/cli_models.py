"""``sentinel models``: list, show, promote and roll back versions of the model registry;
``pull`` and ``report`` take files out of it (:mod:`workflows.client.cli_downloads`).

``promote`` and ``rollback`` move production only from the version the user saw: the verb
reads production first and shows it (or takes ``--expect-production``, the version a decision
was made on earlier), and the move is refused, naming the current version, when production
is something else by then.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from activities.contracts.integrity import VerifyModelResult
from activities.contracts.registry import NO_PRODUCTION, ExpectedProduction, ListVersionsResult
from activities.contracts.tasks import metric_label
from workflows.client.api import SentinelClient
from workflows.client.cli_downloads import DOWNLOAD_VERBS, add_download_verbs, run_download_verb
from workflows.client.cli_weights import add_import_verb, import_command

if TYPE_CHECKING:
    from workflows.client.cli_args import Groups

console = Console()
EXIT_OK, EXIT_REFUSED = 0, 1  # the CLI's codes (workflows.client.cli): success, refused
EXPECT_HELP = (
    "the production version you decided on (default: read now and shown); production moves "
    "only if it still is this version"
)


def expected_version(text: str) -> ExpectedProduction:
    """``3``, ``v3`` or ``none`` -> the production version a move expects (argparse type)."""
    value = text.strip().lower()
    if value == NO_PRODUCTION:
        return NO_PRODUCTION
    digits = value.removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"invalid version {text!r}: use e.g. 3, v3 or none")
    return int(digits)


def rollback_source(text: str) -> int:
    """``3`` or ``v3`` (argparse type): rolling back needs a production version."""
    version = expected_version(text)
    if version == NO_PRODUCTION:
        raise argparse.ArgumentTypeError("rollback needs the production version it moves from")
    return version


def add_models_verbs(groups: Groups) -> None:
    """``sentinel models list|show|verify|promote|rollback|import|pull|report``."""
    models = groups.add_parser("models", help="the versioned model registry")
    mverbs = models.add_subparsers(dest="verb", required=True)
    mverbs.add_parser("list", help="versions of a model, newest first").add_argument("model")
    show = mverbs.add_parser("show", help="metadata of a version (default: production)")
    show.add_argument("model")
    show.add_argument("--version", type=int)
    show.add_argument("--alias", default="production", choices=["production", "latest"])
    verify = mverbs.add_parser(
        "verify",
        help="check every signature and file of a model against its signed metadata "
        "(exit 1 on any failure)",
    )
    verify.add_argument("model")
    verify.add_argument("--version", type=int, help="only this version (default: all)")
    promote = mverbs.add_parser(
        "promote", help="point production at a version (only from the production you saw)"
    )
    promote.add_argument("model")
    promote.add_argument("version", type=int, help="the version to put in production")
    promote.add_argument("--reason", required=True, help="why (recorded in the alias history)")
    promote.add_argument(
        "--expect-production",
        type=expected_version,
        metavar="N|none",
        help=EXPECT_HELP + " ('none': there was no production version)",
    )
    rollback = mverbs.add_parser(
        "rollback", help="production one step back (only from the production you saw)"
    )
    rollback.add_argument("model")
    rollback.add_argument("--reason", required=True, help="why (recorded in the alias history)")
    rollback.add_argument(
        "--expect-production", type=rollback_source, metavar="N", help=EXPECT_HELP
    )
    add_import_verb(mverbs)
    add_download_verbs(mverbs)


def _label(version: ExpectedProduction | None) -> str:
    return "none" if version in (None, NO_PRODUCTION) else f"v{version}"


async def _expected(
    sentinel: SentinelClient, model: str, given: ExpectedProduction | None
) -> ExpectedProduction:
    """The production version the move starts from: ``given``, else read now; shown."""
    if given is not None:
        console.print(f"production expected: {_label(given)}")
        return given
    current = await sentinel.production_version(model)
    console.print(f"production now: {_label(current)}")
    return NO_PRODUCTION if current is None else current


async def run_models(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Run one ``sentinel models`` verb; returns the exit code."""
    if args.verb == "import":
        return await import_command(sentinel, args)
    if args.verb in DOWNLOAD_VERBS:
        return await run_download_verb(sentinel, args)
    if args.verb == "list":
        _print_listing(args.model, await sentinel.list_versions(args.model))
    elif args.verb == "show":
        shown = await sentinel.show_version(args.model, args.version, args.alias)
        console.print_json(shown.metadata.model_dump_json())
    elif args.verb == "verify":
        return _print_verification(await sentinel.verify_model(args.model, args.version))
    elif args.verb == "promote":
        expected = await _expected(sentinel, args.model, args.expect_production)
        result = await sentinel.promote(
            args.model, args.version, args.reason, expect_production=expected
        )
        console.print(
            f"production: {_label(result.previous_version)} -> v{result.version}"
            if result.changed
            else f"v{result.version} is already production"
        )
    elif args.verb == "rollback":
        expected = await _expected(sentinel, args.model, args.expect_production)
        if expected == NO_PRODUCTION:
            print(f"error: cannot roll back {args.model!r}: no production version", file=sys.stderr)
            return EXIT_REFUSED
        rolled = await sentinel.rollback(args.model, args.reason, expect_production=expected)
        console.print(f"production: v{rolled.from_version} -> v{rolled.to_version}")
    return EXIT_OK


def _print_verification(result: VerifyModelResult) -> int:
    """One line per version (and per bad file), then the verdict; the exit code."""
    for check in result.versions:
        files = len(check.artifacts)
        verdict = "ok" if check.ok else "FAILED"
        console.print(f"v{check.version}: {verdict} (metadata signature, {files} files)")
        if check.problem:
            console.print(f"  metadata.json: {check.problem}", markup=False)
        for artifact in check.artifacts:
            if artifact.problem:
                console.print(f"  {artifact.name}: {artifact.problem}", markup=False)
    console.print(f"alias history: {result.history_entries} entries", markup=False)
    for problem in result.history_problems:
        console.print(f"  {problem}", markup=False)
    if result.ok:
        console.print(f"{result.model}: every signature and file verified")
        return EXIT_OK
    console.print(f"[red]{result.model}: verification FAILED[/red]")
    return EXIT_REFUSED


def _print_listing(model: str, listing: ListVersionsResult) -> None:
    # Another task than detect: the column is the metric its gate judged (mask mAP50-95, ...).
    gated = next((v for v in listing.versions if v.metric is not None), None)
    column = metric_label(gated.task, gated.metric) if gated else "mAP50-95"
    table = Table(
        "version",
        "created",
        column,
        "gate",
        "parity",
        "production",
        "source",
        title=f"{model}: {listing.total} versions",
    )
    for v in listing.versions:
        table.add_row(
            f"v{v.version}",
            v.created_at.isoformat(timespec="seconds"),
            f"{v.score if v.score is not None else v.map50_95:.4f}",
            "promote" if v.gate_promote else "keep",
            "ok" if v.parity_passed else "FAILED",
            "*" if v.production else "",
            "imported" if v.imported else "trained",
        )
    console.print(table)
    for version, why in sorted(listing.untrusted.items()):
        console.print(f"[red]v{version} UNTRUSTED[/red]: {why}")
