"""``sentinel registry``: housekeeping of the registry and the runs bucket (retention)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from workflows.client.api import SentinelClient
from workflows.client.cli_args import duration

if TYPE_CHECKING:
    from workflows.client.cli_args import Groups

console = Console()


def add_registry_verbs(groups: Groups) -> None:
    """``registry gc`` and ``registry gc-schedule``."""
    registry = groups.add_parser("registry", help="housekeeping: sweep what finished runs left")
    verbs = registry.add_subparsers(dest="verb", required=True)
    gc = verbs.add_parser(
        "gc",
        help="delete checkpoints, exports and dead publishes of finished runs "
        "(never a version that exists, never a running workflow's objects)",
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    gc.add_argument(
        "--grace",
        type=duration,
        help="age before orphans go, e.g. 12h (default: the workers' "
        "SENTINEL_RETENTION_GRACE_HOURS)",
    )
    schedule = verbs.add_parser("gc-schedule", help="run gc on a Temporal Schedule (sentinel-gc)")
    schedule.add_argument(
        "--every", type=duration, default=timedelta(days=1), help="interval (default 1d)"
    )
    schedule.add_argument("--grace", type=duration, help="as for gc")
    schedule.add_argument("--delete", action="store_true", help="remove the schedule")


async def run_registry(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Run one ``registry`` verb; returns the exit code."""
    if args.verb == "gc-schedule":
        if args.delete:
            await sentinel.unschedule_gc()
            console.print("schedule sentinel-gc deleted")
        else:
            schedule_id = await sentinel.schedule_gc(args.every, args.grace)
            console.print(f"schedule {schedule_id}: gc every {args.every}")
        return 0
    result = await sentinel.collect_garbage(dry_run=args.dry_run, grace=args.grace)
    verb = "would delete" if result.dry_run else "deleted"
    table = Table("kind", "objects", "MiB", "first keys", title=f"gc {verb}")
    for name, category in result.categories.items():
        table.add_row(
            name,
            str(category.objects),
            f"{category.bytes / 2**20:.1f}",
            "\n".join(category.examples[:3]),
        )
    console.print(table)
    console.print(
        f"{result.runs_seen} run folders and {result.models_seen} models looked at; "
        f"left alone (running): {', '.join(result.skipped_running) or 'none'}; "
        f"kept as watermarks: {', '.join(result.watermarks) or 'none'}"
    )
    return 0
