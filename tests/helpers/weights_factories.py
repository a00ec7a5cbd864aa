"""Factories of the weights catalog and model import contracts (stub results, examples).

Kept apart from :mod:`tests.helpers.factories` (already long); the same rules: when a contract
changes, fix it here.
"""

from __future__ import annotations

from typing import Any

from activities.contracts.dataset import AssembleRequest
from activities.contracts.evaluation import EvaluationOptions, WeightsRef
from activities.contracts.export import ExportOptions
from activities.contracts.model_import import ImportModelRequest
from activities.contracts.weights import (
    AddWeightsRequest,
    AddWeightsResult,
    InspectWeightsResult,
    ListWeightsResult,
    WeightsRecord,
    blob_key,
)
from tests.helpers.factories import AT, SNAPSHOT, assemble_request, unique_model


def blob(sha256: str = "77" * 32) -> WeightsRef:
    """Uploaded weights at their content-addressed key."""
    return WeightsRef(bucket="sentinel-models", key=blob_key(sha256), sha256=sha256)


def inspected(
    class_names: list[str] | None = None, task: str = "detect", imgsz: int | None = 96
) -> InspectWeightsResult:
    """What inspecting a checkpoint found (by default: a detector of the snapshot's classes)."""
    names = list(SNAPSHOT.class_names) if class_names is None else class_names
    return InspectWeightsResult(task=task, class_names=names, imgsz=imgsz)


def add_weights_request(name: str = "yolo11n.pt", sha256: str = "77" * 32) -> AddWeightsRequest:
    """Add the blob with ``sha256`` to the catalog as ``name``."""
    return AddWeightsRequest(name=name, weights=blob(sha256), source_file=name, added_at=AT)


def weights_record(
    name: str = "yolo11n.pt", sha256: str = "77" * 32, task: str = "detect"
) -> WeightsRecord:
    """A catalog entry of an 80-class pretrained detector."""
    return WeightsRecord(
        name=name,
        bucket="sentinel-models",
        key=blob_key(sha256),
        sha256=sha256,
        size=5_600_000,
        task=task,
        class_names=[f"class-{i}" for i in range(80)],
        imgsz=640,
        source_file=name,
        added_at=AT,
    )


def add_weights_result(request: AddWeightsRequest, info: InspectWeightsResult) -> AddWeightsResult:
    """What recording ``request`` with ``info`` creates."""
    record = WeightsRecord(
        name=request.name,
        bucket=request.weights.bucket,
        key=request.weights.key,
        sha256=request.weights.sha256,
        size=1234,
        task=info.task,
        class_names=list(info.class_names),
        imgsz=info.imgsz,
        source_file=request.source_file,
        added_at=request.added_at,
    )
    return AddWeightsResult(record=record, created=True)


def list_weights_result() -> ListWeightsResult:
    """Two catalog entries."""
    entries = [weights_record("a.pt", "71" * 32), weights_record("b-seg.pt", "72" * 32, "segment")]
    return ListWeightsResult(entries=entries, total=2)


def import_request(
    cpu_queue: str = "sentinel-cpu",
    gpu_queue: str = "sentinel-gpu",
    *,
    model: str | None = None,
    **updates: Any,
) -> ImportModelRequest:
    """Import the default blob as ``model`` (data: ``datasets/{model}``), routed to the queues."""
    model = model or unique_model("imp")
    fields: dict[str, Any] = {
        "imgsz": 96,
        "evaluation": EvaluationOptions(bootstrap_resamples=50),
        "export": ExportOptions(map_tolerance=0.05),
        **updates,
    }
    dataset: AssembleRequest = fields.pop("dataset", assemble_request(model, f"datasets/{model}"))
    return ImportModelRequest(
        model=model,
        weights=fields.pop("weights", blob()),
        source_file=fields.pop("source_file", "best.pt"),
        dataset=dataset,
        cpu_task_queue=cpu_queue,
        gpu_task_queue=gpu_queue,
        **fields,
    )
