"""Arguments of the ``sentinel`` CLI that build requests (shared by several verbs)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from activities.contracts.dataset import AssembleRequest
from activities.contracts.retrain import ApprovalPolicy, RetrainRequest
from activities.contracts.training import ArchitectureBase, Hyperparameters, RegistryBase

if TYPE_CHECKING:
    # What ``ArgumentParser.add_subparsers()`` returns; generic only in typeshed.
    Groups = argparse._SubParsersAction[argparse.ArgumentParser]
    Verbs = Groups  # the verbs of one group: the same type


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
        return (
            request if args.model is None else request.model_copy(update={"model_name": args.model})
        )
    if not (args.model and args.prefix):
        raise ValueError("give --request FILE, or --model and --prefix")
    base = (
        RegistryBase(model=args.model, version=args.base.removeprefix("registry:"))
        if args.base.startswith("registry:")
        else ArchitectureBase(name=args.base)
    )
    return RetrainRequest(
        model_name=args.model,
        dataset=AssembleRequest(
            dataset=args.dataset or args.model, prefix=args.prefix, format=args.format
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
        "--base", default="yolov8n.yaml", help="architecture yaml, or registry:VERSION to fine-tune"
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", help="cpu, 0, 0,1 (default: GPU when present)")
    parser.add_argument(
        "--require-approval",
        action="store_true",
        help="wait for 'sentinel retrain approve' before promoting",
    )
