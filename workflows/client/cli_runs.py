"""``sentinel retrain list`` and ``sentinel retrain logs``: what runs did and are doing.

``list`` shows each recent run's stage, epoch and version (from the run's memo and, while it
trains, its heartbeat: no worker is needed); ``logs`` prints a run's training log, kept in
object storage beside its checkpoints and read through a short workflow (no S3 credentials).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from activities.contracts.inspection import TrainingLogRequest
from workflows.retrain import workflow_id_for

if TYPE_CHECKING:
    from workflows.client.api import SentinelClient
    from workflows.client.cli_args import Verbs

VERBS = ("list", "logs")
console = Console()


def add_run_verbs(verbs: Verbs) -> None:
    """``retrain list`` and ``retrain logs`` (added to the ``retrain`` group)."""
    runs = verbs.add_parser("list", help="recent retrains: status, stage, epoch, version")
    runs.add_argument("--limit", type=int, default=20)
    logs = verbs.add_parser("logs", help="the training log of the latest retrain of a model")
    logs.add_argument("model")
    logs.add_argument("--attempt", type=int, help="which attempt (default: the latest)")
    logs.add_argument(
        "--tail", type=int, default=256 * 1024, help="show at most the last BYTES (max 1 MiB)"
    )


def check_logs_args(args: argparse.Namespace) -> None:
    """Raise on a bad ``--attempt`` or ``--tail`` (before connecting)."""
    TrainingLogRequest(
        workflow_id=workflow_id_for(args.model), attempt=args.attempt, max_bytes=args.tail
    )


async def run_runs(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Dispatch ``retrain list`` or ``retrain logs``."""
    if args.verb == "list":
        table = Table("workflow", "status", "stage", "epoch", "version", "started", "closed")
        for run in await sentinel.list_runs(args.limit):
            epoch = f"{run.epoch if run.epoch is not None else '-'}/{run.epochs or '-'}"
            table.add_row(
                run.workflow_id,
                run.status,
                run.stage or "-",
                epoch if run.epochs else "-",
                f"v{run.version}" if run.version is not None else "-",
                f"{run.started_at:%Y-%m-%d %H:%M:%S}" if run.started_at else "",
                f"{run.closed_at:%Y-%m-%d %H:%M:%S}" if run.closed_at else "",
            )
        console.print(table)
        return 0
    log = await sentinel.training_log(args.model, args.attempt, args.tail)
    if log.attempt is None:
        print(f"no training log yet for {log.workflow_id}", file=sys.stderr)
        return 1
    others = ", ".join(str(n) for n in log.attempts)
    print(
        f"# {log.key}: attempt {log.attempt} (attempts with a log: {others}), {log.size} bytes"
        + (f", last {len(log.text.encode())} shown" if log.truncated else ""),
        file=sys.stderr,
    )
    sys.stdout.write(log.text)
    return 0
