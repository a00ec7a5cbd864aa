"""``sentinel data``: look at a dataset prefix before training on it.

``sentinel data validate --prefix P --format F`` runs the assembly's checks without assembling
(:class:`~workflows.inspection.ValidateDatasetWorkflow`): the findings per kind with examples,
images per split, boxes per class and split. Nothing is stored. Exit code 2 when a retrain
could not use the data.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from activities.contracts.dataset import SPLITS, AssembleRequest
from activities.contracts.inspection import DatasetValidation
from activities.contracts.tasks import TASKS

if TYPE_CHECKING:
    from workflows.client.api import SentinelClient
    from workflows.client.cli_args import Groups

EXIT_OK, EXIT_CANNOT_TRAIN = 0, 2
console = Console()


def add_data_verbs(groups: Groups) -> None:
    """The ``data`` group and its verbs."""
    data = groups.add_parser("data", help="check datasets before training on them")
    verbs = data.add_subparsers(dest="verb", required=True)
    validate = verbs.add_parser(
        "validate",
        help="run the assembly's checks without training or storing anything (exit 2: "
        "the data cannot train)",
    )
    validate.add_argument("--prefix", required=True, help="dataset prefix in the data bucket")
    validate.add_argument("--format", default="yolo", choices=["yolo", "coco", "roboflow"])
    validate.add_argument(
        "--task", default="detect", choices=list(TASKS), help="what the labels annotate"
    )
    validate.add_argument("--dataset", help="dataset name (default: the prefix's last folder)")
    validate.add_argument("--bucket", help="source bucket (default: the data bucket)")
    validate.add_argument("--examples", type=int, default=3, help="examples shown per kind")


def request_of(args: argparse.Namespace) -> AssembleRequest:
    """The AssembleRequest ``data validate`` checks (raises on bad input, before connecting)."""
    name = args.dataset or args.prefix.strip("/").rsplit("/", 1)[-1].lower() or "dataset"
    return AssembleRequest(
        dataset=name,
        prefix=args.prefix,
        format=args.format,
        task=args.task,
        bucket=args.bucket,
        max_examples=args.examples,
    )


def print_validation(result: DatasetValidation) -> None:
    """Findings, splits and classes as tables; the verdict last."""
    where = f"{result.bucket}/{result.prefix} ({result.format})"
    console.print(
        f"{where}: {result.listed} objects, {result.images} images, {result.unverified} "
        f"unverified, {result.usable} usable; classes: {', '.join(result.class_names) or '-'}"
    )
    if result.findings:
        findings = Table("finding", "count", "examples", title="validation")
        for kind, count in result.findings.items():
            findings.add_row(kind, str(count), "\n".join(result.examples.get(kind, [])))
        console.print(findings)
    if result.split_counts:
        classes = sorted({name for per in result.class_counts.values() for name in per})
        table = Table("split", "images", *classes, title="images and boxes per class")
        for split in SPLITS:
            boxes = result.class_counts.get(split, {})
            table.add_row(
                split,
                str(result.split_counts.get(split, 0)),
                *(str(boxes.get(name, 0)) for name in classes),
            )
        console.print(table)
    if result.can_train:
        console.print("[green]can train[/]: a retrain would assemble this data")
    else:
        console.print(f"[red]cannot train[/]: {result.problem}")


async def run_data(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Dispatch a ``data`` verb; ``args.prepared`` holds its request."""
    result = await sentinel.validate_dataset(args.prepared)
    print_validation(result)
    return EXIT_OK if result.can_train else EXIT_CANNOT_TRAIN
