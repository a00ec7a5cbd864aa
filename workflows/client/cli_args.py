"""Arguments of the ``sentinel`` CLI that build requests (shared by several verbs)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from activities.contracts.bases import BASE_EXAMPLES, parse_base
from activities.contracts.dataset import AssembleRequest
from activities.contracts.retrain import ApprovalPolicy, RetrainRequest
from activities.contracts.tasks import TASKS
from activities.contracts.training import Hyperparameters

if TYPE_CHECKING:
    # What ``ArgumentParser.add_subparsers()`` returns; generic only in typeshed.
    Groups = argparse._SubParsersAction[argparse.ArgumentParser]
    Verbs = Groups  # the verbs of one group: the same type


BASE_HELP = (
    "starting weights: an architecture yaml to train from scratch (e.g. "
    f"{BASE_EXAMPLES[0]}), a catalog entry ({BASE_EXAMPLES[1]}, see 'sentinel weights "
    f"list'), a registry version ({BASE_EXAMPLES[2]}, {BASE_EXAMPLES[3]}), or a .pt in S3 "
    f"with its digest ({BASE_EXAMPLES[4]}). Default: the workers' SENTINEL_DEFAULT_BASE, "
    "else yolov8n.yaml"
)


def duration(text: str) -> timedelta:
    """``30m``, ``6h``, ``1d`` -> a timedelta (an argparse type)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use e.g. 30m, 6h, 1d"
        ) from None


def request_from_args(args: argparse.Namespace) -> RetrainRequest:
    """A RetrainRequest from ``--request FILE`` (JSON) or from the flags."""
    if args.request:
        request = RetrainRequest.model_validate_json(Path(args.request).read_text())
        update: dict[str, object] = {}
        if args.model is not None:
            update["model_name"] = args.model
        if args.base is not None:
            update["base"] = parse_base(args.base, model=args.model or request.model_name)
        # validated again: model_copy alone would not check the updated fields
        return RetrainRequest.model_validate({**request.model_dump(), **update})
    if not (args.model and args.prefix):
        raise ValueError("give --request FILE, or --model and --prefix")
    base = parse_base(args.base, model=args.model) if args.base is not None else None
    return RetrainRequest(
        model_name=args.model,
        dataset=AssembleRequest(
            dataset=args.dataset or args.model,
            prefix=args.prefix,
            format=args.format,
            task=args.task,
        ),
        base=base,
        hyperparameters=Hyperparameters(
            epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device or None
        ),
        approval=ApprovalPolicy(required=args.require_approval),
    )


def add_request_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that build a RetrainRequest (``retrain start``, ``controller apply``)."""
    parser.add_argument("--request", help="JSON file with a full RetrainRequest")
    parser.add_argument("--model", help="model name (workflow id retrain-MODEL)")
    parser.add_argument("--prefix", help="dataset prefix in the data bucket")
    parser.add_argument("--dataset", help="dataset name for snapshots (default: model name)")
    parser.add_argument("--format", default="yolo", choices=["yolo", "coco", "roboflow"])
    parser.add_argument(
        "--task",
        default="detect",
        choices=list(TASKS),
        help="what the labels annotate (segment: polygons, pose: keypoints with kpt_shape in "
        "data.yaml, obb: four corners, classify: class folders)",
    )
    parser.add_argument("--base", default=None, help=BASE_HELP)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", help="cpu, 0, 0,1 (default: GPU when present)")
    parser.add_argument(
        "--require-approval",
        action="store_true",
        help="wait for 'sentinel retrain approve' before promoting",
    )
