"""``sentinel``: the command line over :mod:`workflows.client.api`.

Exit codes: 0 success, 1 the run failed or an operation was refused, 2 bad usage or input
(``data validate``: the data cannot train), 3 the run was canceled or terminated, 4 Temporal
unreachable. Input is checked before any connection is tried; an unreachable Temporal is
reported after ``CLI_CONNECT_TIMEOUT_SECONDS`` unless
``SENTINEL_TEMPORAL_CONNECT_TIMEOUT_SECONDS`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
)
from temporalio.service import RPCError

from activities.contracts.common import ModelName
from activities.contracts.controller import ControllerConfig
from activities.infra.connection import TemporalUnavailableError, connect, exit_process
from activities.infra.errors import BadInputError, ConfigurationError, SentinelError
from activities.infra.settings import Settings
from workflows.client import cli_data, cli_runs
from workflows.client.api import SentinelClient
from workflows.client.cli_args import add_request_flags, duration, request_from_args
from workflows.client.cli_models import add_models_verbs, run_models
from workflows.client.cli_predict import add_predict_verbs, run_predict
from workflows.client.cli_registry import add_registry_verbs, run_registry
from workflows.client.cli_weights import add_weights_group, weights_command
from workflows.client.errors import AlreadyRunningError, RetrainNotRunningError
from workflows.client.follow import follow_run, print_progress, print_result
from workflows.retrain import model_name_of

if TYPE_CHECKING:
    from workflows.client.cli_args import Groups

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
CLI_CONNECT_TIMEOUT_SECONDS = 3.0
"""How long the CLI tries to reach Temporal when the setting is not set (workers: 10 s)."""
console = Console()


def build_parser() -> argparse.ArgumentParser:
    """The ``sentinel`` parser: one group of verbs per area (retrain, models, controller,
    predict, registry)."""
    parser = argparse.ArgumentParser(
        prog="sentinel", description="Sentinel Training: durable YOLO retraining on Temporal."
    )
    groups = parser.add_subparsers(dest="group", required=True)
    _add_retrain_verbs(groups)
    add_models_verbs(groups)
    _add_controller_verbs(groups)
    add_weights_group(groups)
    cli_data.add_data_verbs(groups)
    add_predict_verbs(groups)
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
        (
            "cancel",
            "cancel: training stops, nothing is published (once publishing began, "
            "the run completes instead)",
        ),
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
    cli_runs.add_run_verbs(verbs)  # list, logs


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
    if verb in cli_runs.VERBS:
        return await cli_runs.run_runs(sentinel, args)
    if verb == "start":
        workflow_id = await sentinel.start_retrain(args.prepared, attach=args.attach)
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
    return EXIT_OK


async def _controller(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    if args.verb == "apply":
        config = ControllerConfig(request=args.prepared, threshold=args.threshold)
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


def prepare(args: argparse.Namespace) -> None:
    """Check the input and build the verb's request (``args.prepared``) before connecting:
    bad input is reported as such, whether or not Temporal is reachable."""
    args.prepared = None
    if args.group == "data":
        args.prepared = cli_data.request_of(args)
    elif (args.group, args.verb) in (("retrain", "start"), ("controller", "apply")):
        args.prepared = request_from_args(args)
    elif getattr(args, "model", None) is not None:
        try:
            TypeAdapter(ModelName).validate_python(args.model)
        except ValidationError as exc:
            raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    if args.verb == "logs":
        cli_runs.check_logs_args(args)
    if getattr(args, "limit", 1) < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")


async def connect_client() -> SentinelClient:
    """A client from the ``SENTINEL_*`` settings, giving up after a few seconds by default."""
    settings = Settings()
    explicit = "temporal_connect_timeout_seconds" in settings.model_fields_set
    timeout = None if explicit else CLI_CONNECT_TIMEOUT_SECONDS
    return SentinelClient(await connect(settings, timeout=timeout), settings)


async def run(args: argparse.Namespace) -> int:
    prepare(args)
    sentinel = await connect_client()
    handlers = {
        "retrain": _retrain,
        "models": run_models,
        "controller": _controller,
        "weights": weights_command,
        "data": cli_data.run_data,
        "predict": run_predict,
        "registry": run_registry,
    }
    return await handlers[args.group](sentinel, args)


def failure_message(cause: BaseException | None) -> str:
    """What a failed run says: through "activity task failed" wrappers to the error inside
    (a registry refusal names the current production version there)."""
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    return str(getattr(cause, "message", cause))


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
    except SentinelError as exc:  # raised here, e.g. by an upload: missing S3 credentials
        print(f"error: {exc}", file=sys.stderr)
        usage = isinstance(exc, BadInputError | ConfigurationError)  # fix the input/settings
        return EXIT_USAGE if usage else EXIT_FAILED
    except (AlreadyRunningError, RetrainNotRunningError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, CancelledError | TerminatedError):
            print(f"run {type(exc.cause).__name__.removesuffix('Error').lower()}", file=sys.stderr)
            return EXIT_CANCELED
        print(f"error: {failure_message(exc.cause)}", file=sys.stderr)
        return EXIT_FAILED
    except WorkflowUpdateFailedError as exc:
        print(f"error: {getattr(exc.cause, 'message', exc.cause)}", file=sys.stderr)
        return EXIT_FAILED
    except RPCError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
