"""Running a verified model over decoded images with Ultralytics, into stored predictions.

:class:`Runner` loads ``model.pt`` (PyTorch) or ``model.onnx`` (ONNX Runtime, through
Ultralytics' AutoBackend) from a path :func:`activities.predict.models.local_weights`
verified; :data:`RUNNERS` keeps loaded runners between the shards a worker predicts;
:func:`predictions_of` turns one Ultralytics ``Results`` into
:class:`~activities.predict.records.Prediction` records for whatever task the model has.

Call :func:`activities.infra.yolo_env.bootstrap_offline` before using this module.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from activities.contracts.predict import PredictOptions
from activities.predict.records import Prediction, Task

TASKS: tuple[Task, ...] = ("detect", "segment", "pose", "obb", "classify")
TOP_CLASSES = 5


def decode(data: bytes) -> np.ndarray | None:
    """An encoded image as a BGR array (what Ultralytics takes), or None if unreadable."""
    import cv2

    array = np.frombuffer(data, dtype=np.uint8)
    if array.size == 0:
        return None
    image = cv2.imdecode(array, cv2.IMREAD_COLOR)
    return cast("np.ndarray | None", image)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _box_predictions(result: Any, boxes: Any, task: Task) -> list[Prediction]:
    xyxy = boxes.xyxy.cpu().numpy()
    conf = boxes.conf.cpu().numpy()
    cls = boxes.cls.cpu().numpy()
    polygons = result.masks.xy if task == "segment" and result.masks is not None else None
    keypoints = result.keypoints if task == "pose" else None
    kp_xy = keypoints.xy.cpu().numpy() if keypoints is not None else None
    kp_conf = (
        keypoints.conf.cpu().numpy()
        if keypoints is not None and keypoints.conf is not None
        else None
    )
    obb = boxes.xywhr.cpu().numpy() if task == "obb" else None
    found = []
    for i in range(len(conf)):
        polygon = None
        if polygons is not None and len(polygons[i]) >= 3:
            polygon = [(float(x), float(y)) for x, y in polygons[i]]
        points = None
        if kp_xy is not None:
            vis = kp_conf[i] if kp_conf is not None else np.ones(len(kp_xy[i]))
            pairs = zip(kp_xy[i], vis, strict=True)
            points = [(float(x), float(y), float(v)) for (x, y), v in pairs]
        found.append(
            Prediction(
                cls=int(cls[i]),
                conf=min(1.0, max(0.0, float(conf[i]))),
                box=cast("tuple[float, float, float, float]", tuple(_floats(xyxy[i]))),
                polygon=polygon,
                keypoints=points,
                obb=(
                    cast("tuple[float, float, float, float, float]", tuple(_floats(obb[i])))
                    if obb is not None
                    else None
                ),
            )
        )
    return found


def predictions_of(result: Any, task: Task) -> list[Prediction]:
    """The predictions in one Ultralytics ``Results`` (pixels of the original image)."""
    if task == "classify":
        probs = result.probs
        if probs is None:
            return []
        top = [int(i) for i in probs.top5][:TOP_CLASSES]
        confs = _floats(probs.top5conf.cpu().numpy())[:TOP_CLASSES]
        return [
            Prediction(cls=c, conf=min(1.0, max(0.0, p))) for c, p in zip(top, confs, strict=True)
        ]
    boxes = result.obb if task == "obb" else result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    return _box_predictions(result, boxes, task)


@dataclass
class Runner:
    """One loaded model and how it is run (the same settings for every batch)."""

    model: Any
    task: Task
    imgsz: int
    options: PredictOptions
    device: str | None

    @classmethod
    def load(cls, weights: Path, imgsz: int, options: PredictOptions, device: str | None) -> Runner:
        """Load verified weights (``.pt`` or ``.onnx``); the task comes from the file."""
        from ultralytics import YOLO

        model = YOLO(str(weights))
        task = str(model.task)
        if task not in TASKS:
            raise ValueError(f"unsupported model task {task!r} (supported: {', '.join(TASKS)})")
        return cls(model, task, imgsz, options, device)

    def predict(self, images: Sequence[np.ndarray]) -> list[list[Prediction]]:
        """Predictions of each image, in order."""
        if not images:
            return []
        results = self.model.predict(
            source=list(images),
            imgsz=self.imgsz,
            conf=self.options.conf,
            iou=self.options.iou,
            max_det=self.options.max_detections,
            device=self.device,
            batch=len(images),
            verbose=False,
            save=False,
        )
        return [predictions_of(result, self.task) for result in results]


class RunnerPool:
    """Loaded runners kept between shards of this worker process.

    Loading and warming a model costs about a second, once per shard without the pool. A
    runner serves one shard at a time (Ultralytics predictors keep per-call state), so
    concurrent shards of the same model get runners of their own. Keyed by the weights path,
    which is content-addressed (``{sha256}.pt``), and the run settings; at most
    ``max_models`` keys and ``per_model`` idle runners each are kept.
    """

    def __init__(self, max_models: int = 2, per_model: int = 2) -> None:
        self.max_models = max_models
        self.per_model = per_model
        self._idle: OrderedDict[tuple[str, int, str, str | None], list[Runner]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def runner(
        self, weights: Path, imgsz: int, options: PredictOptions, device: str | None
    ) -> Iterator[Runner]:
        """A loaded runner for the duration of the block (reused, or loaded now)."""
        key = (str(weights), imgsz, options.model_dump_json(), device)
        with self._lock:
            idle = self._idle.get(key)
            found = idle.pop() if idle else None
        runner = found or Runner.load(weights, imgsz, options, device)
        try:
            yield runner
        finally:
            with self._lock:
                kept = self._idle.setdefault(key, [])
                self._idle.move_to_end(key)
                if len(kept) < self.per_model:
                    kept.append(runner)
                while len(self._idle) > self.max_models:
                    self._idle.popitem(last=False)


RUNNERS = RunnerPool()
"""The worker process's pool."""
