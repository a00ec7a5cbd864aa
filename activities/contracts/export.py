"""Contracts of the export activity: ``.pt`` -> ``.onnx`` with a parity check.

A parity failure is a *result* (``parity.passed`` false, with the numbers), not an error: the
version is still registered, and promotion is blocked with the reason recorded.
"""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract, ObjectKey, accepts_flat_options
from activities.contracts.dataset import SnapshotRef
from activities.contracts.evaluation import WeightsRef


class ExportOptions(Contract):
    """ONNX export settings and parity tolerances.

    Part of :class:`~activities.contracts.retrain.RetrainRequest` (``export``) and handed to
    the export activity as it is (``ExportRequest.options``).
    """

    opset: int | None = Field(None, ge=7, le=30, description="None: the exporter's default")
    dynamic: bool = False
    simplify: bool = True
    output_tolerance: float = Field(
        1e-2, ge=0, description="max abs difference of raw outputs, ONNX Runtime vs PyTorch"
    )
    map_tolerance: float = Field(0.01, ge=0, le=1, description="max |mAP50-95 onnx - pt|")


class ExportRequest(Contract):
    """Export ``weights`` to ONNX and check it against PyTorch on the snapshot's test split.

    ``conf`` and ``iou`` are the evaluation's (the parity mAP is measured the same way).
    """

    weights: WeightsRef
    snapshot: SnapshotRef
    output_prefix: ObjectKey = Field(description="runs-bucket prefix for model.onnx")
    imgsz: int = Field(640, ge=32, le=8192)
    conf: float = Field(0.001, gt=0, lt=1)
    iou: float = Field(0.7, gt=0, le=1)
    parity_images: int = Field(4, ge=1, le=64, description="test images for the raw comparison")
    options: ExportOptions = Field(default_factory=ExportOptions)

    # Activity tasks scheduled by workflows older than ``options`` carry its fields flat.
    _flat_options = accepts_flat_options()


class ParityReport(Contract):
    """What the parity check measured and whether it passed."""

    passed: bool
    reason: str
    checker_ok: bool
    max_abs_diff: float | None = None
    output_tolerance: float
    images_compared: int = 0
    pt_map50_95: float | None = Field(
        None, description="the test-split metric of the .pt: mAP50-95, or the task's primary"
    )
    onnx_map50_95: float | None = Field(None, description="the same metric of the .onnx")
    map_tolerance: float


class ExportResult(Contract):
    """The exported ONNX file (by key) and its parity report."""

    pt: WeightsRef
    onnx: WeightsRef
    opset: int
    dynamic: bool
    imgsz: int
    simplified: bool
    parity: ParityReport
    versions: dict[str, str] = Field(default_factory=dict, description="ultralytics, onnx, ...")
