"""Hyperparameters -> Ultralytics train arguments, validated before any training starts.

The contract checks shapes; this module checks ``extra`` against Ultralytics itself: names must
be known train arguments (``ultralytics.cfg.DEFAULT_CFG_DICT``) and values must pass
``ultralytics.cfg.check_cfg``. Every problem becomes a :class:`BadInputError` naming the argument.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from activities.contracts.training import OWNED_TRAIN_ARGS, Hyperparameters
from activities.infra.errors import BadInputError, ConfigurationError

MULTI_GPU_REFUSAL = (
    "training on several GPUs (device={device!r}) is not supported: Ultralytics' DDP re-launches "
    "training in new processes where this worker's heartbeats, checkpoint uploads and cancel do "
    "not run, so the run could neither be followed, resumed nor stopped. Train on one GPU "
    "(e.g. device='{first}'), or leave device unset for the first GPU"
)
"""Why a device string naming several GPUs is refused (request validation and activity)."""


def refuse_several_gpus(device: str | None) -> None:
    """Raise :class:`BadInputError` when ``device`` names more than one GPU."""
    if device is not None and "," in device:
        first = device.split(",")[0]
        raise BadInputError(MULTI_GPU_REFUSAL.format(device=device, first=first))


def resolve_device(device: str | None) -> str:
    """``None`` -> ``"0"`` when CUDA is available, else ``"cpu"``; GPUs must exist, and one
    only (:data:`MULTI_GPU_REFUSAL`)."""
    import torch

    refuse_several_gpus(device)
    if device is None:
        return "0" if torch.cuda.is_available() else "cpu"
    if device != "cpu":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device {device!r} requested but this worker has no CUDA GPU: run it on a GPU "
                "worker or set hyperparameters.device to null or 'cpu'"
            )
        wanted = [int(part) for part in device.split(",")]
        count = torch.cuda.device_count()
        if max(wanted) >= count:
            raise ConfigurationError(
                f"device {device!r} requested but this worker has {count} GPU(s)"
            )
    return device


def validate_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """Check ``extra`` names and values against Ultralytics; returns the normalised copy."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    for key in extra:
        if key in OWNED_TRAIN_ARGS:
            raise BadInputError(f"hyperparameters.extra may not set {key!r}: it is set by us")
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, list(DEFAULT_CFG_DICT), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadInputError(
                f"hyperparameters.extra: unknown Ultralytics argument {key!r}{hint}"
            )
    checked = dict(extra)
    for key, value in extra.items():
        one = {key: value}
        try:
            check_cfg(one, hard=True)
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"hyperparameters.extra[{key!r}] is invalid: {exc}") from None
        checked[key] = one[key]
    return checked


def validate(hp: Hyperparameters) -> dict[str, Any]:
    """Validate everything that can be checked before training; returns the checked extra."""
    from ultralytics.cfg import check_cfg

    extra = validate_extra(dict(hp.extra))
    dedicated = {"lr0": hp.lr0, "patience": hp.patience, "seed": hp.seed, "workers": hp.workers}
    try:
        check_cfg(dedicated, hard=True)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"hyperparameters invalid: {exc}") from None
    return extra


def train_args(
    hp: Hyperparameters,
    extra: dict[str, Any],
    *,
    data: Path,
    save_dir: Path,
    batch: int,
    device: str,
) -> dict[str, Any]:
    """Keyword arguments for ``YOLO(...).train`` of a fresh (not resumed) run."""
    args: dict[str, Any] = {
        "plots": False,
        "verbose": False,
        "amp": device != "cpu",  # AMP only on CUDA; check_amp runs offline (yolo_env)
        **extra,
        "data": str(data),
        "epochs": hp.epochs,
        "imgsz": hp.imgsz,
        "batch": batch,
        "lr0": hp.lr0,
        "patience": hp.patience,
        "seed": hp.seed,
        "optimizer": hp.optimizer,
        "device": device,
        "workers": hp.workers,
        "project": str(save_dir.parent),
        "name": save_dir.name,
        "save_dir": str(save_dir),
        "exist_ok": True,
        "save": True,
    }
    return args


def resume_args(
    hp: Hyperparameters, *, checkpoint: Path, data: Path, save_dir: Path, batch: int, device: str
) -> dict[str, Any]:
    """Keyword arguments for ``YOLO(checkpoint).train`` resuming ``checkpoint``.

    Ultralytics restores every other argument from the checkpoint's ``train_args`` and only
    accepts updates of a few (batch, device, workers, save_dir, ...); ``data`` points at this
    worker's copy of the snapshot.
    """
    return {
        "resume": str(checkpoint),
        "data": str(data),
        "save_dir": str(save_dir),
        "batch": batch,
        "device": device,
        "workers": hp.workers,
    }
