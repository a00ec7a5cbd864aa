"""``sentinel weights add|list`` and ``sentinel models import``: start from weights a team has.

Registered from :mod:`workflows.client.cli`. Both upload verbs put the file in object storage
with the workers' S3 settings (:mod:`workflows.client.uploads`); the rest runs in workflows.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from activities.contracts.dataset import AssembleRequest
from activities.contracts.model_import import ImportModelRequest, ImportModelResult
from activities.contracts.weights import WeightsRecord
from workflows.client.api import SentinelClient

if TYPE_CHECKING:
    from workflows.client.cli_args import Groups

console = Console()

IMPORT_DESCRIPTION = """\
Register the model you already run as version 1 of MODEL, in production: the file is uploaded,
its task and classes are read and checked against the data, it is evaluated on the test split
of a fresh snapshot of --prefix, exported to ONNX, and published like any version (metadata
says it was imported). The first retrain of MODEL is then gated against it.

example: sentinel models import detector best.pt --prefix datasets/detector --format coco
"""

WEIGHTS_ADD_DESCRIPTION = """\
Upload a .pt and add it to the pretrained-weights catalog; a worker reads its task and classes.
Use it as a retrain's base with --base weights:NAME. An entry never changes: the same bytes
again are a no-op, other bytes under a taken name are refused.

example: sentinel weights add yolo11n.pt
         sentinel retrain start --model detector --prefix datasets/d --base weights:yolo11n.pt
"""


def add_weights_group(groups: Groups) -> None:
    """``sentinel weights add FILE [--name N]`` and ``sentinel weights list``."""
    weights = groups.add_parser("weights", help="the pretrained-weights catalog (retrain bases)")
    verbs = weights.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser(
        "add",
        help="upload a .pt and add it to the catalog",
        description=WEIGHTS_ADD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("file", type=Path, help="a .pt written by Ultralytics (torch.save)")
    add.add_argument("--name", help="catalog name (default: the file name)")
    listing = verbs.add_parser("list", help="catalog entries: name, task, classes, size, digest")
    listing.add_argument("--limit", type=int, default=500)


def add_import_verb(model_verbs: Groups) -> None:
    """``sentinel models import MODEL FILE --prefix ... [--format ...]``."""
    verb = model_verbs.add_parser(
        "import",
        help="register a model you already run as v1, in production",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verb.add_argument("model", help="model name (registry models/MODEL/)")
    verb.add_argument("file", type=Path, help="the .pt you run today (Ultralytics detection)")
    verb.add_argument("--prefix", required=True, help="dataset prefix in the data bucket")
    verb.add_argument("--format", default="yolo", choices=["yolo", "coco", "roboflow"])
    verb.add_argument("--dataset", help="dataset name for snapshots (default: model name)")
    verb.add_argument("--imgsz", type=int, default=640, help="evaluation and export image size")
    verb.add_argument("--device", help="cpu, 0, 0,1 (default: GPU when present)")


def _record_row(record: WeightsRecord) -> list[str]:
    classes = ", ".join(record.class_names[:4]) + (" …" if len(record.class_names) > 4 else "")
    return [
        record.name,
        record.task,
        f"{len(record.class_names)} ({classes})",
        f"{record.size / 1e6:.1f} MB",
        record.sha256[:12],
        record.added_at.isoformat(timespec="seconds"),
    ]


async def weights_command(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Run ``sentinel weights VERB``; returns the exit code."""
    if args.verb == "add":
        added = await sentinel.add_weights(args.file, args.name)
        record = added.record
        state = "added" if added.created else "already in the catalog (same bytes)"
        console.print(
            f"weights:{record.name} {state}: {record.task}, {len(record.class_names)} classes, "
            f"sha256 {record.sha256[:12]}… (use: --base weights:{record.name})"
        )
        return 0
    listing = await sentinel.list_weights(args.limit)
    table = Table(
        "name", "task", "classes", "size", "sha256", "added",
        title=f"pretrained weights: {listing.total}",
    )  # fmt: skip
    for record in listing.entries:
        table.add_row(*_record_row(record))
    console.print(table)
    for name, why in sorted(listing.untrusted.items()):
        console.print(f"[red]{name} UNTRUSTED[/red]: {why}")
    return 0


def _print_import(result: ImportModelResult) -> None:
    table = Table(show_header=False, title=f"{result.model} v{result.version} (imported)")
    table.add_row("production", "yes" if result.promoted else "no")
    table.add_row("reason", result.reason)
    table.add_row("mAP50-95 (test split)", f"{result.map50_95:.4f}")
    table.add_row("mAP50 (test split)", f"{result.map50:.4f}")
    table.add_row("classes", ", ".join(result.class_names))
    table.add_row("snapshot", result.snapshot_key)
    for name, key in result.artifacts.items():
        table.add_row(name, key)
    console.print(table)


async def import_command(sentinel: SentinelClient, args: argparse.Namespace) -> int:
    """Run ``sentinel models import``; returns the exit code."""
    dataset = AssembleRequest(
        dataset=args.dataset or args.model, prefix=args.prefix, format=args.format
    )
    console.print(f"uploading {args.file} …")
    weights, file_name = await sentinel.upload(args.file)
    console.print(f"importing as {args.model} (sha256 {weights.sha256[:12]}…) …")
    request = ImportModelRequest(
        model=args.model,
        weights=weights,
        source_file=file_name,
        dataset=dataset,
        imgsz=args.imgsz,
        device=args.device or None,
    )
    _print_import(await sentinel.import_model(request))
    return 0
