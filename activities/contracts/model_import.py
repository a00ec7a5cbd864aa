"""Contracts of ImportModelWorkflow: register the model a team already runs as version 1.

The weights were uploaded by the client to their content-addressed key
(:func:`activities.contracts.weights.blob_key`); the request carries that key and the digest
the client computed from the file, which vouches for the bytes every activity loads.
"""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract, ModelName
from activities.contracts.dataset import AssembleRequest
from activities.contracts.evaluation import EvaluationOptions, WeightsRef
from activities.contracts.export import ExportOptions


class ImportModelRequest(Contract):
    """Evaluate ``weights`` on a fresh snapshot of ``dataset``, register it as ``model`` v1 and
    make it production. No secrets: credentials come from the workers' settings."""

    model: ModelName
    weights: WeightsRef
    source_file: str = Field(min_length=1, max_length=255, description="the file's name")
    dataset: AssembleRequest
    imgsz: int = Field(640, ge=32, le=8192, description="evaluation and export image size")
    device: str | None = Field(None, description="None: first CUDA device when present, else cpu")
    evaluation: EvaluationOptions = Field(default_factory=EvaluationOptions)
    export: ExportOptions = Field(default_factory=ExportOptions)
    cpu_task_queue: str = "sentinel-cpu"
    gpu_task_queue: str = "sentinel-gpu"


class ImportModelResult(Contract):
    """The registered version, whether it became production, and what it scored."""

    model: ModelName
    version: int
    promoted: bool
    reason: str
    production_version: int | None
    map50_95: float = Field(description="on the test split of the snapshot")
    map50: float
    task: str
    class_names: list[str]
    snapshot_key: str
    dataset_counts: dict[str, int]
    artifacts: dict[str, str] = Field(description="artifact name -> object key")
