"""What an Ultralytics checkpoint says about itself: task, class names, training image size.

Loading a ``.pt`` unpickles it: callers hand in a file already verified against the digest
that vouches for it (:func:`activities.infra.weights_cache.cached_weights`), and call
:func:`activities.infra.yolo_env.bootstrap_offline` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from activities.contracts.weights import InspectWeightsResult
from activities.infra.errors import BadInputError


def _class_names(names: Any) -> list[str]:
    if isinstance(names, dict):
        return [str(names[key]) for key in sorted(names)]
    return [str(name) for name in names or []]


def _imgsz(checkpoint: Any) -> int | None:
    args = checkpoint.get("train_args") if isinstance(checkpoint, dict) else None
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    return imgsz if isinstance(imgsz, int) and not isinstance(imgsz, bool) else None


def inspect_file(path: Path, label: str) -> InspectWeightsResult:
    """Task, classes and imgsz of the checkpoint at ``path`` (``label`` names it in errors)."""
    from ultralytics import YOLO

    try:
        model = YOLO(str(path))
    except Exception as exc:  # torch/pickle/yaml errors of many kinds
        raise BadInputError(f"{label} is not an Ultralytics checkpoint: {exc}") from None
    names = _class_names(model.names)
    if not names:
        raise BadInputError(f"{label} records no class names: not a trained Ultralytics model")
    return InspectWeightsResult(
        task=str(model.task), class_names=names, imgsz=_imgsz(getattr(model, "ckpt", None))
    )
