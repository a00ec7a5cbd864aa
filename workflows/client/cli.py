"""``sentinel``: the command line over :mod:`workflows.client.api`.

Exit codes: 0 success, 1 the run failed or an operation was refused, 2 bad usage or input,
3 the run was canceled or terminated, 4 Temporal unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import CancelledError, TerminatedError
from temporalio.service import RPCError

from activities.contracts.controller import ControllerConfig
from activities.infra.connection import TemporalUnavailableError, exit_process
from workflows.client.api import SentinelClient
from workflows.client.cli_args import add_request_flags, duration, request_from_args
from workflows.client.cli_registry import add_registry_verbs, run_registry
from workflows.client.errors import RetrainAlreadyRunningError
from workflows.client.follow import follow_run, print_progress, print_result
from workflows.retrain import model_name_of

if TYPE_CHECKING:
    from workflows.client.cli_args import Groups

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
console = Console()


def build_parser() -> argparse.ArgumentParser:
    """The ``sentinel`` parser: one group of verbs per area (retrain, models, controller,
    registry)."""
    parser = argparse.ArgumentParser(
        prog="sentinel", description="Sentinel Training: durable YOLO retraining on Temporal."
    )
    groups = parser.add_subparsers(dest="group", required=True)
    _add_retrain_verbs(groups)
    _add_models_verbs(groups)
    _add_controller_verbs(groups)
    add_registry_verbs(groups)
    return parser


def _add_retrain_verbs(groups: Groups) -> None:
    retrain = groups.add_parser("retrain", help="start, follow and steer retrains")
    verbs = retrain.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("start", help="start a retrain of a model")
    add_request_flags(start)
    start.add_argument("--follow", action="store_true", help="show live progress until done")
    start.add_argument(
        "--attach", action="store_true", help="if one is running, follow it instead of failing"
    )
    for name, text in [
        ("progress", "show the stage, epoch and metrics of the latest retrain"),
        ("follow", "follow the latest retrain live until it ends"),
        ("stop-early", "finish training after this epoch; the pipeline continues"),
        ("cancel", "cancel: training stops, nothing is published"),
        ("result", "wait for the latest retrain and print its result"),
    ]:
        verbs.add_parser(name, help=text).add_argument("model")
    for name, text in [
        ("approve", "approve the pending promotion"),
        ("reject", "reject the pending promotion"),
    ]:
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("model")
        verb.add_argument("--by", default="cli", help="who decides (recorded)")
        verb.add_argument("--comment", default="", help="why (recorded)")
    runs = verbs.add_parser("list", help="recent retrains with their status")
    runs.add_argument("--limit", type=int, default=20)


def _add_models_verbs(groups: Groups) -> None:
    models = groups.add_parser("models", help="the versioned model registry")
    mverbs = models.add_subparsers(dest="verb", required=True)
    mverbs.add_parser("list", help="versions of a model, newest first").add_argument("model")
    show = mverbs.add_parser("show", help="metadata of a version (default: production)")
    show.add_argument("model")
    show.add_argument("--version", type=int)
    show.add_argument("--alias", default="production", choices=["production", "latest"])
    promote = mverbs.add_parser("promote", help="point production at a version")
    promote.add_argument("model")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason", required=True)
    rollback = mverbs.add_parser("rollback", help="production back to the previous version")
    rollback.add_argument("model")
    rollback.add_argument("--reason", required=True)


def _add_controller_verbs(groups: Groups) -> None:
    controller = groups.add_parser("controller", help="retrain when enough new data arrives")
    cverbs = controller.add_subparsers(dest="verb", required=True)
    apply = cverbs.add_parser("apply", help="create or update the model's check schedule")
    add_request_flags(apply)
    apply.add_argument(
        "--threshold", type=int, default=100, help="new verified images that trigger a retrain"
    )
    apply.add_argument(
        "--every",
        type=duration,
        default=timedelta(hours=1),
        help="check interval, e.g. 30m, 6h (default 1h)",
    )
    for name, text in [
        ("trigger", "run the check now"),
        ("pause", "pause the schedule"),
        ("unpause", "resume the schedule"),
    ]:
        cverbs.add_parser(name, help=text).add_argument("model")


async def _retrain(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    verb = args.verb
    if verb == "start":
        workflow_id = await sentinel.start_retrain(request_from_args(args), attach=args.attach)
        console.print(f"started {workflow_id}")
        return await follow_run(sentinel, model_name_of(workflow_id)) if args.follow else 0
    if verb == "follow":
        return await follow_run(sentinel, args.model)
    if verb == "progress":
        print_progress(await sentinel.progress(args.model))
    elif verb == "stop-early":
        await sentinel.stop_early(args.model)
        console.print("stop requested: training ends after the current epoch")
    elif verb == "cancel":
        await sentinel.cancel(args.model)
        console.print("cancel requested")
    elif verb in ("approve", "reject"):
        action = sentinel.approve if verb == "approve" else sentinel.reject
        console.print(await action(args.model, args.by, args.comment))
    elif verb == "result":
        print_result(await sentinel.result(args.model))
    elif verb == "list":
        table = Table("workflow", "status", "started", "closed")
        for run in await sentinel.list_runs(args.limit):
            table.add_row(
                run.workflow_id, run.status, str(run.started_at or ""), str(run.closed_at or "")
            )
        console.print(table)
    return EXIT_OK


async def _models(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    if args.verb == "list":
        listing = await sentinel.list_versions(args.model)
        table = Table(
            "version",
            "created",
            "mAP50-95",
            "gate",
            "parity",
            "production",
            title=f"{args.model}: {listing.total} versions",
        )
        for v in listing.versions:
            table.add_row(
                f"v{v.version}",
                v.created_at.isoformat(timespec="seconds"),
                f"{v.map50_95:.4f}",
                "promote" if v.gate_promote else "keep",
                "ok" if v.parity_passed else "FAILED",
                "*" if v.production else "",
            )
        console.print(table)
    elif args.verb == "show":
        shown = await sentinel.show_version(args.model, args.version, args.alias)
        console.print_json(shown.metadata.model_dump_json())
    elif args.verb == "promote":
        result = await sentinel.promote(args.model, args.version, args.reason)
        console.print(
            f"production: v{result.previous_version} -> v{result.version}"
            if result.changed
            else f"v{result.version} is already production"
        )
    elif args.verb == "rollback":
        rolled = await sentinel.rollback(args.model, args.reason)
        console.print(f"production: v{rolled.from_version} -> v{rolled.to_version}")
    return EXIT_OK


async def _controller(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    if args.verb == "apply":
        config = ControllerConfig(request=request_from_args(args), threshold=args.threshold)
        schedule_id = await sentinel.apply_controller(config, args.every)
        console.print(f"schedule {schedule_id}: every {args.every}, threshold {args.threshold}")
    elif args.verb == "trigger":
        await sentinel.trigger_controller(args.model)
        console.print("check triggered")
    elif args.verb == "pause":
        await sentinel.pause_controller(args.model)
        console.print("paused")
    elif args.verb == "unpause":
        await sentinel.unpause_controller(args.model)
        console.print("resumed")
    return EXIT_OK


async def run(args: argparse.Namespace) -> int:
    sentinel = await SentinelClient.connect()
    handlers = {
        "retrain": _retrain,
        "models": _models,
        "controller": _controller,
        "registry": run_registry,
    }
    return await handlers[args.group](sentinel, args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sentinel`` console script; exits the process with the code."""
    exit_process(_main(argv))
    return EXIT_OK  # unreachable: exit_process does not return


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except TemporalUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'request'}: {error['msg']}"
            for error in exc.errors()
        )
        print(f"error: invalid request: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RetrainAlreadyRunningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, CancelledError | TerminatedError):
            print(f"run {type(exc.cause).__name__.removesuffix('Error').lower()}", file=sys.stderr)
            return EXIT_CANCELED
        print(f"error: {getattr(exc.cause, 'message', exc.cause)}", file=sys.stderr)
        return EXIT_FAILED
    except WorkflowUpdateFailedError as exc:
        print(f"error: {getattr(exc.cause, 'message', exc.cause)}", file=sys.stderr)
        return EXIT_FAILED
    except RPCError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
