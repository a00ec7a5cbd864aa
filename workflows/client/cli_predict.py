"""``sentinel predict``: batch prediction with a registered version (over the typed client).

``start`` builds a :class:`PredictRequest` from flags (an image prefix) or ``--request FILE``
(any source, e.g. a snapshot split); the other verbs name a run by its workflow id (printed
by ``start``) or by ``--out``, its output prefix (one run per prefix).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.service import RPCError

from activities.contracts.predict import (
    PREDICT_FORMATS,
    ImageSource,
    PredictFormat,
    PredictOptions,
    PredictProgress,
    PredictRequest,
    PredictResult,
)
from workflows.client.api import SentinelClient
from workflows.client.follow import ENDED, report_end
from workflows.client.predict_api import prediction_id

if TYPE_CHECKING:
    from workflows.client.cli_args import Groups

console = Console()


def formats(text: str) -> list[PredictFormat]:
    """``coco,yolo`` -> the formats (an argparse type)."""
    chosen: list[PredictFormat] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = [f for f in PREDICT_FORMATS if f == part]
        if not match:
            raise argparse.ArgumentTypeError(
                f"unknown format {part!r}: use {', '.join(PREDICT_FORMATS)}"
            )
        chosen.append(match[0])
    return chosen


def add_predict_verbs(groups: Groups) -> None:
    """``sentinel predict start|progress|follow|stop|cancel|result``."""
    predict = groups.add_parser("predict", help="run a registered version over new images")
    verbs = predict.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("start", help="start a prediction run")
    start.add_argument("--request", help="JSON file with a full PredictRequest")
    start.add_argument("--model", help="registered model name")
    which = start.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="version number")
    which.add_argument("--alias", choices=["production", "latest"], help="default: production")
    start.add_argument("--compare-version", type=int, help="second version: disagreements first")
    start.add_argument("--prefix", help="image prefix (every image under it)")
    start.add_argument("--bucket", help="bucket of --prefix (default: the data bucket)")
    start.add_argument("--out", help="output prefix in the data bucket")
    start.add_argument(
        "--format", type=formats, default=list(PREDICT_FORMATS), help="coco,yolo,labelstudio"
    )
    start.add_argument(
        "--backend",
        choices=["pytorch", "onnx"],
        default="pytorch",
        help="pytorch: model.pt on the GPU queue; onnx: ONNX Runtime on the CPU queue",
    )
    start.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    start.add_argument("--imgsz", type=int, help="default: the version's training size")
    start.add_argument("--batch", type=int, default=16, help="images per inference batch")
    start.add_argument("--shard-size", type=int, help="default: SENTINEL_PREDICT_SHARD_SIZE")
    start.add_argument("--parallel", type=int, default=4, help="shards predicted at once")
    start.add_argument("--follow", action="store_true", help="show live progress until done")
    start.add_argument("--attach", action="store_true", help="follow a running one instead")
    for name, text in [
        ("progress", "stage, shards and images done, throughput"),
        ("follow", "follow a run live until it ends"),
        ("stop", "finish the running shards, start no more, write what was predicted"),
        ("cancel", "cancel: running shards stop, no outputs are written"),
        ("result", "wait for a run and print its summary"),
    ]:
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("workflow_id", nargs="?", help="workflow id printed by 'start'")
        verb.add_argument("--out", help="or: the run's output prefix")


def request_from_args(args: argparse.Namespace) -> PredictRequest:
    """A PredictRequest from ``--request FILE`` or from the flags."""
    if args.request:
        return PredictRequest.model_validate_json(Path(args.request).read_text())
    if not (args.model and args.prefix and args.out):
        raise ValueError("give --request FILE, or --model, --prefix and --out")
    return PredictRequest(
        model=args.model,
        version=args.version,
        alias=args.alias or "production",
        compare_version=args.compare_version,
        source=ImageSource(prefix=args.prefix, bucket=args.bucket),
        out=args.out,
        formats=args.format,
        backend=args.backend,
        options=PredictOptions(conf=args.conf, imgsz=args.imgsz, batch=args.batch),
        shard_size=args.shard_size,
        parallel_shards=args.parallel,
    )


def _run_id(args: argparse.Namespace) -> str:
    if args.workflow_id:
        return str(args.workflow_id)
    if args.out:
        return prediction_id(args.out)
    raise ValueError("name the run: its workflow id, or --out PREFIX")


def print_progress(progress: PredictProgress) -> None:
    """One table with everything the ``progress`` query returned."""
    table = Table(show_header=False, title=f"prediction with {progress.model}")
    table.add_row("stage", progress.stage)
    table.add_row("version", f"v{progress.version}" if progress.version else "-")
    table.add_row(
        "shards", f"{progress.shards_done}/{progress.shards} ({progress.shards_running} running)"
    )
    table.add_row("images", f"{progress.images_done}/{progress.images}")
    table.add_row("elapsed", f"{progress.elapsed_seconds:.0f}s")
    if progress.images_per_second is not None:
        table.add_row("images/s", f"{progress.images_per_second:.1f}")
    if progress.stop_early_requested:
        table.add_row("stop", "requested: running shards finish, no new ones")
    if progress.error:
        table.add_row("error", progress.error)
    console.print(table)


def print_result(result: PredictResult) -> None:
    """The summary of a finished run and where its outputs are."""
    summary = result.summary
    table = Table(show_header=False, title=f"{result.model} v{result.version} predictions")
    table.add_row("images", f"{summary.images} ({summary.unreadable} unreadable)")
    table.add_row("predictions", str(summary.predictions))
    for name, count in summary.predictions_per_class.items():
        table.add_row(f"  {name}", str(count))
    mean = summary.mean_confidence
    table.add_row("mean confidence", "-" if mean is None else f"{mean:.3f}")
    table.add_row("images/s", f"{summary.images_per_second:.1f} ({summary.seconds:.1f}s)")
    table.add_row("shards", f"{result.shards_predicted}/{result.shards}"
                  + (" (stopped early)" if result.stopped_early else ""))  # fmt: skip
    for name, shape in summary.outputs.items():
        files = "" if shape.files == 1 else f"{shape.files} files, "
        table.add_row(name, f"{shape.key} ({files}{shape.records} records)")
    table.add_row("manifest", f"s3://{result.out_bucket}/{result.manifest_key}")
    if result.top_ranked:
        table.add_row("check first", result.top_ranked[0])
    console.print(table)


async def follow_prediction(sentinel: SentinelClient, workflow_id: str, poll: float = 1.0) -> int:
    """Live progress until the run ends; returns the CLI exit code of its outcome."""
    handle = sentinel.prediction_handle(workflow_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("queued", total=None, rate="")
        while (status := (await handle.describe()).status) not in ENDED:
            try:
                progress = await sentinel.prediction_progress(workflow_id)
            except RPCError:
                await asyncio.sleep(poll)  # no worker picked it up yet
                continue
            rate = progress.images_per_second
            bar.update(
                task,
                description=progress.stage,
                total=progress.images or None,
                completed=progress.images_done,
                rate=f"{rate:.1f} img/s" if rate else "",
            )
            await asyncio.sleep(poll)
    return await report_end(handle.result(), status, print_result)


async def run_predict(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Dispatch one ``sentinel predict`` verb; returns the exit code."""
    if args.verb == "start":
        workflow_id = await sentinel.start_prediction(request_from_args(args), attach=args.attach)
        console.print(f"started {workflow_id}")
        return await follow_prediction(sentinel, workflow_id) if args.follow else 0
    workflow_id = _run_id(args)
    if args.verb == "follow":
        return await follow_prediction(sentinel, workflow_id)
    if args.verb == "progress":
        print_progress(await sentinel.prediction_progress(workflow_id))
    elif args.verb == "stop":
        await sentinel.stop_prediction(workflow_id)
        console.print("stop requested: running shards finish, then the outputs are written")
    elif args.verb == "cancel":
        await sentinel.cancel_prediction(workflow_id)
        console.print("cancel requested")
    elif args.verb == "result":
        print_result(await sentinel.prediction_result(workflow_id))
    return 0
