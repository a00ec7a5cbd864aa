"""One Ultralytics validation run that keeps the per-image matching statistics.

``DetectionValidator`` accumulates, per image, the detections' true-positive matrix (10 IoU
thresholds), confidences and classes and the targets' classes, and throws them away once the
totals are computed. :class:`RecordingValidator` keeps a copy keyed by image file, which is
what a bootstrap over test images needs (:mod:`activities.evaluation.bootstrap`).

Call :func:`activities.infra.yolo_env.bootstrap_offline` before using this module.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activities.contracts.evaluation import ModelMetrics

OnBatch = Callable[[int, int], None]
"""``on_batch(done, total)`` after each validation batch."""


@dataclass
class ImageStats:
    """The matching statistics of every image (same order in every field)."""

    files: list[str] = field(default_factory=list)
    tp: list[np.ndarray] = field(default_factory=list)  # (detections, 10) bool
    conf: list[np.ndarray] = field(default_factory=list)
    pred_cls: list[np.ndarray] = field(default_factory=list)
    target_cls: list[np.ndarray] = field(default_factory=list)

    def aligned_to(self, files: list[str]) -> ImageStats:
        """These statistics in the image order of ``files`` (same image set required)."""
        where = {name: i for i, name in enumerate(self.files)}
        if set(where) != set(files):
            raise ValueError("the two validation runs saw different images")
        order = [where[name] for name in files]
        return ImageStats(
            files=list(files),
            tp=[self.tp[i] for i in order],
            conf=[self.conf[i] for i in order],
            pred_cls=[self.pred_cls[i] for i in order],
            target_cls=[self.target_cls[i] for i in order],
        )


@dataclass
class ValRun:
    """Totals of one validation and the per-image statistics behind them."""

    metrics: ModelMetrics
    images: int
    instances: int
    instances_per_class: dict[str, int]
    names: dict[int, str]
    stats: ImageStats


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (without importing them)."""
    found = {}
    for package in ("ultralytics", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _recording_validator() -> type:
    from ultralytics.models.yolo.detect import DetectionValidator

    class RecordingValidator(DetectionValidator):
        """DetectionValidator that keeps per-image statistics in ``self.recorded``."""

        def init_metrics(self, model: Any) -> None:
            super().init_metrics(model)
            self.recorded = ImageStats()

        def update_metrics(self, preds: list[dict[str, Any]], batch: dict[str, Any]) -> None:
            before = len(self.metrics.stats["tp"])
            super().update_metrics(preds, batch)
            stats = self.metrics.stats
            for offset, i in enumerate(range(before, len(stats["tp"]))):
                self.recorded.files.append(Path(batch["im_file"][offset]).name)
                self.recorded.tp.append(np.asarray(stats["tp"][i], dtype=bool))
                self.recorded.conf.append(np.asarray(stats["conf"][i], dtype=float))
                self.recorded.pred_cls.append(np.asarray(stats["pred_cls"][i], dtype=float))
                self.recorded.target_cls.append(np.asarray(stats["target_cls"][i], dtype=float))

    return RecordingValidator


def _metrics(box: Any, names: dict[int, str]) -> ModelMetrics:
    per50, per5095 = {}, {}
    for row, cls in enumerate(box.ap_class_index):
        per50[names[int(cls)]] = float(box.all_ap[row, 0])
        per5095[names[int(cls)]] = float(box.all_ap[row].mean())
    return ModelMetrics(
        precision=float(box.mp),
        recall=float(box.mr),
        map50=float(box.map50),
        map50_95=float(box.map),
        per_class_ap50=per50,
        per_class_ap50_95=per5095,
    )


def run_val(
    weights: Path,
    data_yaml: Path,
    *,
    split: str = "test",
    imgsz: int,
    conf: float,
    iou: float,
    batch: int,
    device: str | None = None,
    rect: bool = True,
    workdir: Path | None = None,
    on_batch: OnBatch | None = None,
) -> ValRun:
    """Validate ``weights`` (``.pt`` or ``.onnx``) on ``split`` of ``data_yaml``."""
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    validator_cls = _recording_validator()
    captured: dict[str, Any] = {}

    def on_val_start(validator: Any) -> None:
        captured["validator"] = validator

    def on_val_batch_end(validator: Any) -> None:
        if on_batch is not None:
            on_batch(int(validator.batch_i) + 1, len(validator.dataloader))

    model.add_callback("on_val_start", on_val_start)
    model.add_callback("on_val_batch_end", on_val_batch_end)
    project = Path(tempfile.mkdtemp(prefix="val-", dir=workdir))
    try:
        result = model.val(
            data=str(data_yaml),
            split=split,
            imgsz=imgsz,
            conf=conf,
            iou=iou,
            batch=batch,
            device=device,
            rect=rect,
            plots=False,
            save_json=False,
            verbose=False,
            project=str(project),
            name="val",
            exist_ok=True,
            validator=validator_cls,
        )
    finally:
        shutil.rmtree(project, ignore_errors=True)
    return _val_run(result, captured["validator"].recorded)


def _val_run(result: Any, recorded: ImageStats) -> ValRun:
    """Totals of one ``model.val`` result and the statistics its validator recorded."""
    names = {int(k): str(v) for k, v in dict(result.names).items()}
    per_class = np.zeros(len(names), dtype=int)
    for target in recorded.target_cls:
        per_class += np.bincount(target.astype(int), minlength=len(names))[: len(names)]
    return ValRun(
        metrics=_metrics(result.box, names),
        images=len(recorded.files),
        instances=int(per_class.sum()),
        instances_per_class={names[i]: int(n) for i, n in enumerate(per_class)},
        names=names,
        stats=recorded,
    )
