"""The ``export`` activity (CPU queue): ``.pt`` -> ``.onnx`` plus the parity check.

The ONNX file is stored content-addressed (``{output_prefix}/model-{sha256[:16]}.onnx`` in
the runs bucket), so a retried or duplicated attempt never overwrites a file whose digest an
earlier result already handed on.
"""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.evaluation import WeightsRef
from activities.contracts.export import ExportRequest, ExportResult
from activities.evaluation.common import fetch_weights, scratch_dir
from activities.infra import timings
from activities.infra.errors import translate_errors
from activities.infra.heartbeat import Progress, heartbeat_progress, no_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore, sha256_file


def export(
    store: ObjectStore,
    settings: Settings,
    request: ExportRequest,
    *,
    progress: Progress = no_progress,
) -> ExportResult:
    """Export the weights to ONNX, check parity on the snapshot's test split, upload."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from activities.dataset import materialize_snapshot
    from activities.evaluation.validate import library_versions
    from activities.export.parity import check_parity, copy_weights, export_onnx

    options = request.options
    with timings.span("materialize"):
        leased = materialize_snapshot(store, settings, request.snapshot, on_progress=progress)
    with leased as dataset, scratch_dir(settings, "export-") as tmp:
        with timings.span("fetch_weights"):
            source = fetch_weights(store, settings, request.weights, ".pt")
            pt_path = copy_weights(source, tmp)
        progress("export", 0, 1)
        with timings.span("onnx_export"):
            onnx_path, opset = export_onnx(
                pt_path,
                imgsz=request.imgsz,
                opset=options.opset,
                dynamic=options.dynamic,
                simplify=options.simplify,
                task=request.snapshot.task,
            )
        progress("export", 1, 1)
        parity = check_parity(
            pt_path,
            onnx_path,
            dataset.data_yaml,
            imgsz=request.imgsz,
            conf=request.conf,
            iou=request.iou,
            output_tolerance=options.output_tolerance,
            map_tolerance=options.map_tolerance,
            images=request.parity_images,
            workdir=tmp,
            on_step=progress,
            task=request.snapshot.task,
        )
        with timings.span("upload"):
            digest = sha256_file(onnx_path)
            key = f"{request.output_prefix.strip('/')}/model-{digest[:16]}.onnx"
            info = store.put_file(settings.runs_bucket, key, onnx_path)
    return ExportResult(
        pt=request.weights,
        onnx=WeightsRef(bucket=settings.runs_bucket, key=key, sha256=info.sha256 or digest),
        opset=opset,
        dynamic=options.dynamic,
        imgsz=request.imgsz,
        simplified=options.simplify,
        parity=parity,
        versions=library_versions(),
    )


class ExportActivities:
    """The export activity bound to one store (CPU workers)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.EXPORT)
    @translate_errors
    def export(self, request: ExportRequest) -> ExportResult:
        """ONNX export with a parity check; a parity failure is in the result, not an error."""
        return export(self.store, self.settings, request, progress=heartbeat_progress())
