"""ONNX export and the parity check of an ONNX file against its PyTorch weights.

:func:`check_parity` never raises for a bad ONNX file: a file that fails ``onnx.checker``,
that ONNX Runtime cannot load, whose raw outputs differ from PyTorch's by more than the
tolerance, or whose mAP50-95 on the test split is off by more than the tolerance gives a
failed :class:`ParityReport` with the numbers and the reason.

Call :func:`activities.infra.yolo_env.bootstrap_offline` before using this module.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from activities.contracts.export import ParityReport
from activities.contracts.tasks import metric_label
from activities.infra import timings
from activities.infra.heartbeat import Progress, no_progress


def export_onnx(
    pt_path: Path,
    *,
    imgsz: int,
    opset: int | None,
    dynamic: bool,
    simplify: bool,
    task: str = "detect",
) -> tuple[Path, int]:
    """Export ``pt_path`` (a ``task`` model) with Ultralytics; returns the ``.onnx`` path and
    its opset."""
    import onnx
    from ultralytics import YOLO

    out = YOLO(str(pt_path), task=task).export(
        format="onnx",
        imgsz=imgsz,
        opset=opset,
        dynamic=dynamic,
        simplify=simplify,
        device="cpu",
        batch=1,
        nms=False,
    )
    proto = onnx.load(str(out), load_external_data=False)
    used = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return Path(out), int(used)


def split_images(data_yaml: Path, limit: int) -> list[Path]:
    """The first ``limit`` test images of a dataset (sorted by path); ``data_yaml`` may be a
    classification dataset's directory (``test/{class}/*``)."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    if data_yaml.is_dir():
        files = [
            p
            for p in (data_yaml / "test").rglob("*")
            if p.suffix.lower().lstrip(".") in IMG_FORMATS
        ]
        return sorted(files)[:limit]
    data = check_det_dataset(str(data_yaml))
    entries = data.get("test") or []
    found: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        path = Path(entry)
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.suffix.lower().lstrip(".") in IMG_FORMATS]
        elif path.suffix == ".txt" and path.is_file():
            base = path.parent
            found += [base / line.strip() for line in path.read_text().splitlines() if line.strip()]
    return sorted(found)[:limit]


def _letterbox(path: Path, imgsz: int) -> np.ndarray:
    import cv2
    from ultralytics.data.augment import LetterBox

    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read test image {path}")
    boxed = LetterBox(new_shape=(imgsz, imgsz), auto=False, stride=32)(image=image)
    chw = boxed[..., ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
    return np.ascontiguousarray(chw[None], dtype=np.float32) / 255.0


def _first(output: object) -> np.ndarray:
    while isinstance(output, (list, tuple)):
        output = output[0]
    if hasattr(output, "detach"):
        output = output.detach().cpu().numpy()
    return np.asarray(output)


def raw_output_diff(pt_path: Path, onnx_path: Path, images: list[Path], imgsz: int) -> float:
    """Max abs difference of the raw outputs (ONNX Runtime vs PyTorch) over ``images``."""
    import onnxruntime as ort
    import torch
    from ultralytics.nn.autobackend import AutoBackend

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    backend = AutoBackend(model=str(pt_path), device=torch.device("cpu"), fuse=True).eval()
    worst = 0.0
    for path in images:
        x = _letterbox(path, imgsz)
        with torch.inference_mode():
            expected = _first(backend(torch.from_numpy(x)))
        got = _first(session.run(None, {input_name: x}))
        if got.shape != expected.shape:
            raise ValueError(f"output shapes differ: onnx {got.shape} vs pytorch {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected))))
    return worst


def check_parity(
    pt_path: Path,
    onnx_path: Path,
    data_yaml: Path,
    *,
    imgsz: int,
    conf: float = 0.001,
    iou: float = 0.7,
    output_tolerance: float = 1e-2,
    map_tolerance: float = 0.01,
    images: int = 4,
    workdir: Path | None = None,
    on_step: Progress = no_progress,
    task: str = "detect",
) -> ParityReport:
    """Compare ``onnx_path`` with ``pt_path``: checker, raw outputs (the first output: for
    segment the detections, not the mask prototypes), and the test-split metric (mAP50-95 for
    detect, the task's primary metric otherwise, reported in the ``*_map50_95`` fields)."""
    import onnx

    def failed(reason: str, **measured: Any) -> ParityReport:
        return ParityReport(
            passed=False,
            reason=reason[:500],
            output_tolerance=output_tolerance,
            map_tolerance=map_tolerance,
            **{"checker_ok": True, **measured},
        )

    try:
        with timings.span("parity_checker"):
            onnx.checker.check_model(str(onnx_path))
    except Exception as exc:  # any checker failure is a parity failure, not a crash
        return failed(f"onnx.checker: {exc}", checker_ok=False)
    on_step("checker", 1, 3)
    picked = split_images(data_yaml, images)
    if not picked:
        return failed("no test images to compare on")
    try:
        with timings.span("parity_outputs"):
            max_diff = raw_output_diff(pt_path, onnx_path, picked, imgsz)
    except Exception as exc:  # ONNX Runtime refusing the file is a parity failure
        return failed(f"ONNX Runtime vs PyTorch: {exc}", images_compared=0)
    on_step("outputs", 2, 3)
    with timings.span("parity_pt_val"):
        pt_map = _test_map(pt_path, data_yaml, imgsz, conf, iou, workdir, task)
    try:
        with timings.span("parity_onnx_val"):
            onnx_map = _test_map(onnx_path, data_yaml, imgsz, conf, iou, workdir, task)
    except Exception as exc:
        return failed(
            f"ONNX validation failed: {exc}",
            max_abs_diff=max_diff,
            images_compared=len(picked),
            pt_map50_95=pt_map,
        )
    on_step("map", 3, 3)
    label = "mAP50-95" if task == "detect" else metric_label(task, None)
    return _verdict(max_diff, len(picked), pt_map, onnx_map, output_tolerance, map_tolerance, label)


def _test_map(
    weights: Path,
    data_yaml: Path,
    imgsz: int,
    conf: float,
    iou: float,
    workdir: Path | None,
    task: str = "detect",
) -> float:
    """The task's metric on the test split, the same way for both files (CPU, batch 1,
    square): mAP50-95 for detect."""
    from activities.evaluation.validate import run_val

    run = run_val(
        weights, data_yaml, split="test", imgsz=imgsz, conf=conf, iou=iou, batch=1,
        device="cpu", rect=False, workdir=workdir, task=task,
    )  # fmt: skip
    score = run.metrics.score()
    return float(score if score is not None else run.metrics.map50_95)


def _verdict(
    max_diff: float,
    compared: int,
    pt_map: float,
    onnx_map: float,
    output_tolerance: float,
    map_tolerance: float,
    label: str = "mAP50-95",
) -> ParityReport:
    """The report of a check that measured everything: passed when both are in tolerance."""
    problems = []
    if not max_diff <= output_tolerance:
        problems.append(
            f"max abs output difference {max_diff:.3g} > tolerance {output_tolerance:.3g}"
        )
    map_diff = abs(onnx_map - pt_map)
    if not map_diff <= map_tolerance:
        problems.append(
            f"{label} onnx {onnx_map:.4f} vs pt {pt_map:.4f} differs by "
            f"{map_diff:.4f} > tolerance {map_tolerance:.4f}"
        )
    numbers = (
        f"max abs output difference {max_diff:.3g} (tolerance {output_tolerance:.3g}) "
        f"on {compared} test images; {label} onnx {onnx_map:.4f} vs pt {pt_map:.4f} "
        f"(tolerance {map_tolerance:.4f})"
    )
    return ParityReport(
        passed=not problems,
        checker_ok=True,
        max_abs_diff=max_diff,
        images_compared=compared,
        pt_map50_95=pt_map,
        onnx_map50_95=onnx_map,
        reason=("; ".join(problems) if problems else f"ok: {numbers}"),
        output_tolerance=output_tolerance,
        map_tolerance=map_tolerance,
    )


def copy_weights(source: Path, workdir: Path) -> Path:
    """A private copy of ``source`` (the exporter writes next to its input)."""
    target = workdir / "model.pt"
    shutil.copyfile(source, target)
    return target
