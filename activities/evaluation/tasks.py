"""Validation of the tasks other than detect: the recording validators and their metrics.

Segment, pose and OBB validators accumulate per image the same matching statistics as the
detection validator, plus, for segment and pose, a second true-positive matrix of the masks
(``tp_m``) or keypoints (``tp_p``). The recording validator keeps the matrix of the task's
primary metric (:data:`PRIMARY_TP`) per image, so the paired bootstrap
(:mod:`.bootstrap`) resamples the metric the gate judges. The classification validator keeps
per image whether the top-1 class was right (``ImageStats.kind == "accuracy"``).

Call :func:`activities.infra.yolo_env.bootstrap_offline` before using this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from activities.contracts.evaluation import ModelMetrics
from activities.evaluation.validate import ImageStats, ValRun

PRIMARY_TP = {"segment": "tp_m", "pose": "tp_p", "obb": "tp"}
"""The statistics key of the true positives of each mAP task's primary metric."""


def _base(task: str) -> type:
    if task == "segment":
        from ultralytics.models.yolo.segment import SegmentationValidator

        return SegmentationValidator
    if task == "pose":
        from ultralytics.models.yolo.pose import PoseValidator

        return PoseValidator
    if task == "obb":
        from ultralytics.models.yolo.obb import OBBValidator

        return OBBValidator
    raise ValueError(f"no mAP validator for task {task!r}")


def recording_validator(task: str) -> type:
    """The validator of ``task`` that keeps per-image statistics in ``self.recorded``."""
    if task == "classify":
        return _classify_validator()
    key = PRIMARY_TP[task]

    class RecordingValidator(_base(task)):  # type: ignore[misc]  # Ultralytics is untyped
        def init_metrics(self, model: Any) -> None:
            super().init_metrics(model)
            self.recorded = ImageStats()

        def update_metrics(self, preds: Any, batch: dict[str, Any]) -> None:
            before = len(self.metrics.stats["tp"])
            super().update_metrics(preds, batch)
            stats = self.metrics.stats
            for offset, i in enumerate(range(before, len(stats["tp"]))):
                self.recorded.files.append(Path(batch["im_file"][offset]).name)
                self.recorded.tp.append(np.asarray(stats[key][i], dtype=bool))
                self.recorded.conf.append(np.asarray(stats["conf"][i], dtype=float))
                self.recorded.pred_cls.append(np.asarray(stats["pred_cls"][i], dtype=float))
                self.recorded.target_cls.append(np.asarray(stats["target_cls"][i], dtype=float))

        def plot_val_samples(self, batch: dict[str, Any], ni: int) -> None:
            return None

        def plot_predictions(self, batch: dict[str, Any], preds: Any, ni: int) -> None:
            return None

    return RecordingValidator


def _classify_validator() -> type:
    from ultralytics.models.yolo.classify import ClassificationValidator

    class RecordingValidator(ClassificationValidator):
        def init_metrics(self, model: Any) -> None:
            super().init_metrics(model)
            self.recorded = ImageStats(kind="accuracy")

        def update_metrics(self, preds: Any, batch: dict[str, Any]) -> None:
            super().update_metrics(preds, batch)
            top1 = self.pred[-1][:, 0].numpy()
            targets = self.targets[-1].numpy()
            for predicted, target in zip(top1, targets, strict=True):
                self.recorded.correct.append(bool(predicted == target))
                self.recorded.target_cls.append(np.array([float(target)]))

        def get_stats(self) -> dict[str, float]:
            # The validation loader is not shuffled: its samples are the images in order.
            samples = self.dataloader.dataset.samples
            self.recorded.files = [Path(s[0]).name for s in samples][: len(self.recorded.correct)]
            return dict(super().get_stats())

        def plot_val_samples(self, batch: dict[str, Any], ni: int) -> None:
            return None

        def plot_predictions(self, batch: dict[str, Any], preds: Any, ni: int) -> None:
            return None

    return RecordingValidator


def class_accuracy(stats: ImageStats, indices: Any = None) -> dict[int, float]:
    """Top-1 accuracy of each class over its images (at ``indices``; all when None)."""
    idx = range(len(stats.correct)) if indices is None else indices
    correct = np.array([stats.correct[i] for i in idx], dtype=float)
    target = np.array([stats.target_cls[i][0] for i in idx], dtype=int)
    return {int(c): float(correct[target == c].mean()) for c in np.unique(target)}


def _map_metrics(task: str, result: Any, names: dict[int, str]) -> ModelMetrics:
    box = result.box
    primary = {"segment": getattr(result, "seg", None), "pose": getattr(result, "pose", None)}
    main = primary.get(task) or box
    per50, per5095 = {}, {}
    for row, cls in enumerate(main.ap_class_index):
        per50[names[int(cls)]] = float(main.all_ap[row, 0])
        per5095[names[int(cls)]] = float(main.all_ap[row].mean())
    scores = {"box_map50": float(box.map50), "box_map50_95": float(box.map)}
    if task in ("segment", "pose"):
        prefix = "mask" if task == "segment" else "pose"
        scores |= {f"{prefix}_map50": float(main.map50), f"{prefix}_map50_95": float(main.map)}
    return ModelMetrics(
        task=task,  # type: ignore[arg-type]  # one of the Task literals (run_val's caller)
        precision=float(box.mp),
        recall=float(box.mr),
        map50=float(box.map50),
        map50_95=float(box.map),
        per_class_ap50=per50,
        per_class_ap50_95=per5095,
        scores=scores,
    )


def val_run(task: str, result: Any, validator: Any) -> ValRun:
    """Totals of one ``model.val`` of ``task`` and the statistics its validator recorded."""
    recorded: ImageStats = validator.recorded
    names = {int(k): str(v) for k, v in dict(validator.names).items()}
    per_class = np.zeros(len(names), dtype=int)
    for target in recorded.target_cls:
        per_class += np.bincount(target.astype(int), minlength=len(names))[: len(names)]
    if task == "classify":
        accuracy = {names[c]: v for c, v in class_accuracy(recorded).items()}
        metrics = ModelMetrics(
            task="classify",
            precision=0.0,
            recall=0.0,
            map50=0.0,
            map50_95=0.0,
            per_class_ap50_95=accuracy,
            scores={"top1": float(result.top1), "top5": float(result.top5)},
        )
    else:
        metrics = _map_metrics(task, result, names)
    return ValRun(
        metrics=metrics,
        images=len(recorded.files),
        instances=int(per_class.sum()),
        instances_per_class={names[i]: int(n) for i, n in enumerate(per_class)},
        names=names,
        stats=recorded,
    )
