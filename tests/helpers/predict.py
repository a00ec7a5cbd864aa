"""Registered versions for prediction tests and ``bench/predict.py``, and the outputs' truth.

:func:`train_tiny` trains ``yolov8n.yaml`` from scratch on synthetic shapes (no pretrained
weights exist offline) and exports ONNX; :func:`register` publishes the files as a version
through the real publish protocol (metadata with their digests), so prediction loads them
exactly as it loads a version a retrain published. :func:`bare_predictions` is the
independent truth: Ultralytics' own ``predict`` on local files.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.contracts.registry import PublishRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry.core import Registry
from activities.registry.publish import Publisher
from tests.helpers.factories import AT, SNAPSHOT, evaluation, export_result, gate, weights
from workers.dev import synthetic


@dataclass(frozen=True)
class TinyModel:
    """A trained model's files."""

    pt: Path
    onnx: Path
    imgsz: int


def train_tiny(
    root: Path, *, epochs: int, imgsz: int = 96, count: int = 32, seed: int = 21
) -> TinyModel:
    """``yolov8n.yaml`` trained from scratch on ``count`` synthetic images, and its ONNX export."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics import YOLO

    data = synthetic.write_yolo_dir(root / "data", synthetic.generate(count, seed=seed), "train")
    YOLO("yolov8n.yaml").train(
        data=str(data), epochs=epochs, imgsz=imgsz, batch=8, nbs=8, mosaic=0.0, device="cpu",
        workers=0, warmup_epochs=1, seed=seed, deterministic=True, val=False, plots=False,
        amp=False, verbose=False, project=str(root / "runs"), name="m", exist_ok=True,
    )  # fmt: skip
    pt = root / "runs" / "m" / "weights" / "last.pt"
    onnx = YOLO(str(pt)).export(
        format="onnx", imgsz=imgsz, dynamic=False, simplify=False, device="cpu", batch=1, nms=False
    )
    return TinyModel(pt=pt, onnx=Path(onnx), imgsz=imgsz)


def register(store: ObjectStore, settings: Settings, model: str, files: TinyModel) -> int:
    """Publish ``files`` as the next version of ``model`` (promoted); returns its number."""
    run = f"retrain-{model}-{uuid.uuid4().hex[:6]}"
    pt = store.put_file(settings.runs_bucket, f"runs/{run}/weights/best.pt", files.pt)
    onnx = store.put_file(settings.runs_bucket, f"runs/{run}/export/model.onnx", files.onnx)
    pt_ref = weights(pt.key, pt.sha256 or "", settings.runs_bucket)
    onnx_ref = weights(onnx.key, onnx.sha256 or "", settings.runs_bucket)
    exported = export_result(onnx_ref, pt_ref).model_copy(update={"imgsz": files.imgsz})
    request = PublishRequest(
        model=model,
        workflow_id=run,
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        created_at=AT,
        candidate=pt_ref,
        export=exported,
        evaluation=evaluation(model=model),
        gate=gate(True),
        snapshot=SNAPSHOT,
        epochs=1,
    )
    return Publisher(Registry(store, settings.models_bucket)).publish(request).version


def bare_predictions(
    weights_path: Path, images: list[Path], *, imgsz: int, conf: float
) -> dict[str, Any]:
    """``{file name: Ultralytics Results}`` of ``YOLO(weights).predict`` on local files."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics import YOLO

    model = YOLO(str(weights_path))
    found: dict[str, Any] = {}
    for path in images:
        (result,) = model.predict(str(path), imgsz=imgsz, conf=conf, device="cpu", verbose=False)
        found[path.name] = result
    return found
