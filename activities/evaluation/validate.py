"""One Ultralytics validation run that keeps the per-image matching statistics.

``DetectionValidator`` accumulates, per image, the detections' true-positive matrix (10 IoU
thresholds), confidences and classes and the targets' classes, and throws them away once the
totals are computed. :class:`RecordingValidator` keeps a copy keyed by image file, which is
what a bootstrap over test images needs (:mod:`activities.evaluation.bootstrap`); on request
it also keeps the boxes (detections above a confidence, and the ground truth, in the image's
pixels) that the evidence pictures draw, and the Ultralytics plots of the run.

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
from activities.infra import timings

OnBatch = Callable[[int, int], None]
"""``on_batch(done, total)`` after each validation batch."""


@dataclass
class ImageStats:
    """The matching statistics of every image (same order in every field)."""

    files: list[str] = field(default_factory=list)
    kind: str = "map"  # "map": matches per image (every task but classify); "accuracy"
    correct: list[bool] = field(default_factory=list)  # accuracy: top-1 right, per image
    tp: list[np.ndarray] = field(default_factory=list)  # (detections, 10) bool
    conf: list[np.ndarray] = field(default_factory=list)
    pred_cls: list[np.ndarray] = field(default_factory=list)
    target_cls: list[np.ndarray] = field(default_factory=list)
    # Only when boxes are recorded (``run_val(boxes_conf=...)``), else empty:
    paths: list[str] = field(default_factory=list)  # the image file
    boxes: list[np.ndarray] = field(default_factory=list)  # (k, 6) x1 y1 x2 y2 conf cls
    truth: list[np.ndarray] = field(default_factory=list)  # (m, 5) cls x1 y1 x2 y2

    def aligned_to(self, files: list[str]) -> ImageStats:
        """These statistics in the image order of ``files`` (same image set required)."""
        where = {name: i for i, name in enumerate(self.files)}
        if set(where) != set(files):
            raise ValueError("the two validation runs saw different images")
        order = [where[name] for name in files]

        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in order] if values else []

        return ImageStats(
            files=list(files),
            kind=self.kind,
            correct=pick(self.correct),
            tp=pick(self.tp),
            conf=pick(self.conf),
            pred_cls=pick(self.pred_cls),
            target_cls=pick(self.target_cls),
            paths=pick(self.paths),
            boxes=pick(self.boxes),
            truth=pick(self.truth),
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


PLOTS = {
    "confusion_matrix_normalized.png": "confusion_matrix_normalized.png",
    "BoxPR_curve.png": "PR_curve.png",
    "BoxF1_curve.png": "F1_curve.png",
}
"""Ultralytics plot file -> the name it is kept under (``run_val(plots_dir=...)``)."""


def _recording_validator(boxes_conf: float | None) -> type:
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils import ops

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
                if boxes_conf is not None:
                    self._record_boxes(offset, preds[offset], batch, boxes_conf)

        def _record_boxes(
            self, si: int, pred: dict[str, Any], batch: dict[str, Any], conf: float
        ) -> None:
            """Detections at or above ``conf`` and the ground truth, in the image's pixels."""
            pbatch = self._prepare_batch(si, batch)
            keep = pred["conf"] >= conf
            kept = self.scale_preds({k: v[keep] for k, v in pred.items()}, pbatch)
            boxes = np.concatenate(
                [
                    kept["bboxes"].cpu().numpy().reshape(-1, 4),
                    kept["conf"].cpu().numpy().reshape(-1, 1),
                    kept["cls"].cpu().numpy().reshape(-1, 1),
                ],
                axis=1,
            )
            truth = np.zeros((0, 5))
            if pbatch["cls"].shape[0]:
                xyxy = ops.scale_boxes(
                    pbatch["imgsz"],
                    pbatch["bboxes"].clone(),
                    pbatch["ori_shape"],
                    ratio_pad=pbatch["ratio_pad"],
                )
                truth = np.concatenate(
                    [
                        pbatch["cls"].cpu().numpy().reshape(-1, 1),
                        xyxy.cpu().numpy().reshape(-1, 4),
                    ],
                    axis=1,
                )
            self.recorded.paths.append(str(batch["im_file"][si]))
            self.recorded.boxes.append(boxes.astype(float))
            self.recorded.truth.append(truth.astype(float))

        # Of the six plots Ultralytics draws (250 dpi each) we keep three (PLOTS): draw only
        # those, with Ultralytics' own functions and arguments (about half the plotting time).
        def get_stats(self) -> dict[str, Any]:
            plots = self.args.plots
            self.args.plots = False  # no P, R, PR, F1 curves inside the metrics...
            try:
                stats = super().get_stats()
            finally:
                self.args.plots = plots
            if plots:  # ...then the two kept ones
                with timings.span("val_plots"):
                    self._draw_kept_curves()
            return stats

        def _draw_kept_curves(self) -> None:
            from ultralytics.utils.metrics import plot_mc_curve, plot_pr_curve

            box, all_names = self.metrics.box, self.metrics.names
            classes = [int(k) for k in box.ap_class_index]
            if not classes:
                return
            names = {i: all_names[k] for i, k in enumerate(classes) if k in all_names}
            save_dir = Path(self.save_dir)
            plot_pr_curve(box.px, box.prec_values, box.all_ap, save_dir / "BoxPR_curve.png", names,
                          on_plot=self.on_plot)  # fmt: skip
            plot_mc_curve(box.px, box.f1_curve, save_dir / "BoxF1_curve.png", names, ylabel="F1",
                          on_plot=self.on_plot)  # fmt: skip

        def finalize_metrics(self) -> None:
            plots = self.args.plots
            if plots:  # the normalised confusion matrix only (not the raw counts one)
                with timings.span("val_plots"):
                    self.confusion_matrix.plot(
                        save_dir=self.save_dir, normalize=True, on_plot=self.on_plot
                    )
            self.args.plots = False
            try:
                super().finalize_metrics()
            finally:
                self.args.plots = plots

        # Ultralytics' sample mosaics (val_batch*.jpg) are not evidence we keep: skip them.
        def plot_val_samples(self, batch: dict[str, Any], ni: int) -> None:
            return None

        def plot_predictions(self, batch: dict[str, Any], preds: Any, ni: int) -> None:
            return None

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
    plots_dir: Path | None = None,
    boxes_conf: float | None = None,
    task: str = "detect",
) -> ValRun:
    """Validate ``weights`` (``.pt`` or ``.onnx``) on ``split`` of ``data_yaml``.

    ``plots_dir``: keep the Ultralytics plots named in :data:`PLOTS` there. ``boxes_conf``:
    also record each image's detections at or above it and its ground-truth boxes (detect
    only). ``task``: another task's validator and metrics (:mod:`.tasks`).
    """
    from ultralytics import YOLO

    from activities.evaluation import tasks

    model = YOLO(str(weights), task=task)
    if task == "detect":
        validator_cls = _recording_validator(boxes_conf)
    else:
        validator_cls = tasks.recording_validator(task)
        rect = rect and task != "classify"
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
            plots=plots_dir is not None,
            save_json=False,
            verbose=False,
            project=str(project),
            name="val",
            exist_ok=True,
            validator=validator_cls,
        )
        if plots_dir is not None:
            _keep_plots(Path(captured["validator"].save_dir), plots_dir)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    if task != "detect":
        return tasks.val_run(task, result, captured["validator"])
    return _val_run(result, captured["validator"].recorded)


def _keep_plots(save_dir: Path, plots_dir: Path) -> None:
    """Move the plots of :data:`PLOTS` that Ultralytics wrote from ``save_dir``."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    for produced, kept in PLOTS.items():
        if (save_dir / produced).is_file():
            shutil.move(save_dir / produced, plots_dir / kept)


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
