"""Example contracts of the weights catalog and model import, for the round-trip test."""

from __future__ import annotations

from pydantic import BaseModel

from activities.contracts.model_import import ImportModelResult
from activities.contracts.registry import ImportedFrom
from activities.contracts.weights import (
    InspectWeightsRequest,
    ListWeightsRequest,
    RecordWeightsRequest,
)
from tests.helpers.weights_factories import (
    add_weights_request,
    add_weights_result,
    blob,
    import_request,
    inspected,
    list_weights_result,
    weights_record,
)

_ADD = add_weights_request("yolo11n.pt")
_INSPECTED = inspected(["person", "car"], imgsz=640)

EXAMPLES: list[BaseModel] = [
    InspectWeightsRequest(weights=blob()),
    _INSPECTED,
    _ADD,
    weights_record(),
    RecordWeightsRequest(entry=_ADD, inspected=_INSPECTED),
    add_weights_result(_ADD, _INSPECTED),
    ListWeightsRequest(limit=20),
    list_weights_result(),
    ImportedFrom(file_name="best.pt", sha256="77" * 32, task="detect"),
    import_request("cpu-q", "gpu-q", model="detector", device="cpu"),
    ImportModelResult(
        model="detector",
        version=1,
        promoted=True,
        reason="promoted: imported",
        production_version=1,
        map50_95=0.42,
        map50=0.7,
        task="detect",
        class_names=["circle", "square", "triangle"],
        snapshot_key="snapshots/detector/ab.json",
        dataset_counts={"train": 18, "val": 3, "test": 3},
        artifacts={"model.pt": "models/detector/v1/model.pt"},
    ),
]
