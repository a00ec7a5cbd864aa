"""Contracts of the model registry: publish, the version metadata, and alias operations.

Layout in the models bucket (see :mod:`activities.registry`)::

    models/{name}/v{N}/model.pt, model.onnx, results.csv, report.md, metadata.json,
                      evidence/*.png (plots, training curves, per-image comparisons)
    models/{name}/aliases/production.json, latest.json, history/{seq}.json
    models/{name}/claims/v{N}.json, publishes/{id}.json        (exactly-once bookkeeping)

A version exists when its ``metadata.json`` exists (written last).

Over ~300 lines on purpose: every payload of the registry's workflows in one module, so the
shape of a version and of an alias move are read together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from activities.contracts.bases import BaseRecord
from activities.contracts.common import Contract, ModelName, ObjectKey, Sha256
from activities.contracts.dataset import SnapshotRef
from activities.contracts.evaluation import DifferenceCI, EvaluateResult, ModelMetrics, WeightsRef
from activities.contracts.evidence import ImageComparison
from activities.contracts.export import ExportResult, ParityReport
from activities.contracts.gate import GateDecision

Scalar = str | int | float | bool | None
AliasAction = Literal["publish", "promote", "rollback"]
NO_PRODUCTION: Literal["none"] = "none"
ExpectedProduction = Annotated[int, Field(ge=1)] | Literal["none"]
"""The production version a caller saw before asking to move it: a number, or ``"none"`` when
the model had no production version."""


class ArtifactRecord(Contract):
    """One stored file of a version."""

    key: str
    sha256: str
    size: int


class ImportedFrom(Contract):
    """Where an imported version came from: trained elsewhere, registered as it runs today."""

    file_name: str = Field(min_length=1, max_length=255)
    sha256: Sha256
    task: str


class TensorSpec(Contract):
    """One input or output of the exported model: name, shape (a name for a dynamic axis)."""

    name: str
    shape: list[int | str]
    dtype: str


class ModelSignature(Contract):
    """What a serving system needs to call a version: task, tensors, class names (signed with
    the rest of ``metadata.json``)."""

    task: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    class_names: list[str]


class ModelVersion(Contract):
    """``metadata.json`` of a version: everything needed to know what was deployed and why."""

    schema_version: int = 1
    model: ModelName
    version: int = Field(ge=1)
    parent_version: int | None = Field(None, description="registry version fine-tuned from")
    created_at: datetime
    workflow_id: str
    run_id: str
    snapshot: SnapshotRef
    class_names: list[str]
    task: str = Field("detect", description="the snapshot's task (contracts/tasks.py)")
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    epochs: int = Field(ge=0)
    resumed_from_epoch: int | None = None
    candidate: ModelMetrics
    champion: ModelMetrics | None = None
    champion_version: int | None = None
    ci: DifferenceCI | None = None
    per_class_ci: dict[str, DifferenceCI] = Field(
        default_factory=dict, description="per class: interval of the AP50-95 difference"
    )
    comparison: ImageComparison | None = Field(
        None, description="the per-image comparison with the champion (pictures in evidence/)"
    )
    test_images: int
    test_instances: int
    gate: GateDecision
    parity: ParityReport
    onnx_opset: int
    onnx_dynamic: bool
    imgsz: int
    artifacts: dict[str, ArtifactRecord] = Field(
        description="file name (evidence/… for pictures) -> key, sha256, size"
    )
    source_weights: WeightsRef
    versions: dict[str, str] = Field(default_factory=dict)
    base: BaseRecord | None = Field(None, description="the base training started from")
    imported: ImportedFrom | None = Field(
        None, description="set for a version imported as it was (no training by Sentinel)"
    )
    model_signature: ModelSignature | None = Field(
        None, description="task, ONNX inputs/outputs and classes (None: published before it)"
    )


class PublishRequest(Contract):
    """Register the candidate of one workflow run (exactly once per workflow id + run id)."""

    model: ModelName
    workflow_id: str = Field(min_length=1, max_length=1000)
    run_id: str = Field(min_length=1, max_length=1000)
    created_at: datetime = Field(description="workflow.now(): retries record the same time")
    candidate: WeightsRef
    export: ExportResult
    evaluation: EvaluateResult
    gate: GateDecision
    snapshot: SnapshotRef
    parent_version: int | None = Field(None, ge=1)
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    epochs: int = Field(0, ge=0)
    resumed_from_epoch: int | None = None
    results_csv_key: ObjectKey | None = Field(
        None,
        description="training's results.csv in the candidate's bucket (verified against its "
        "recorded sha256); None: a CSV of the evaluation is written instead",
    )
    base: BaseRecord | None = Field(None, description="the base training started from")
    imported: ImportedFrom | None = Field(
        None, description="an import: the weights are registered as they are (epochs 0)"
    )

    @model_validator(mode="after")
    def _parity_decided(self) -> PublishRequest:
        # The gate decides on ONNX parity (workflows.gate.apply_parity); publishing takes the
        # decision as given, so a decision that ignored a failed parity check is refused.
        if self.gate.promote and not self.export.parity.passed:
            raise ValueError(
                "gate promotes although ONNX parity failed: apply the parity check to the "
                "decision before publishing (workflows.gate.apply_parity)"
            )
        return self


class PublishResult(Contract):
    """The version this run registered (or had registered before a retry)."""

    model: ModelName
    version: int
    promoted: bool
    reason: str
    created: bool = Field(description="False: an earlier attempt of this run had published it")
    production_version: int | None
    latest_version: int
    metadata_key: str
    artifacts: dict[str, str] = Field(
        default_factory=dict,
        description="file name -> object key of every file of the version, metadata.json "
        "included (empty only in results recorded before this field existed)",
    )
    bucket: str | None = Field(
        None, description="the models bucket (None in results recorded before this field)"
    )


class AliasEvent(Contract):
    """One move of the production alias (the history; ``production.json`` is the newest)."""

    seq: int = Field(ge=1)
    version: int = Field(ge=1)
    previous_version: int | None = None
    action: AliasAction
    reason: str
    request_id: str
    at: datetime


class LatestAlias(Contract):
    """``latest.json``: the newest version."""

    version: int = Field(ge=1)
    created_at: datetime


class VersionSummary(Contract):
    """One line of a version listing."""

    version: int
    created_at: datetime
    workflow_id: str
    map50_95: float
    task: str = Field("detect", description="the version's task")
    score: float | None = Field(
        None, description="its gated metric's score when not detect's mAP50-95 (gate.metric)"
    )
    metric: str | None = None
    gate_promote: bool
    gate_reason: str
    parity_passed: bool
    production: bool
    imported: bool = False


class ListVersionsRequest(Contract):
    """The newest ``limit`` versions of ``model``."""

    model: ModelName
    limit: int = Field(50, ge=1, le=1000)


class ListVersionsResult(Contract):
    """Versions newest first, and where the aliases point."""

    model: ModelName
    versions: list[VersionSummary]
    production_version: int | None
    latest_version: int | None
    total: int
    untrusted: dict[int, str] = Field(
        default_factory=dict,
        description="versions whose metadata.json failed its signature check, with the reason "
        "(listed, never trusted: 'sentinel models verify' names every bad file)",
    )


class ShowVersionRequest(Contract):
    """One version by number, or the one an alias points to."""

    model: ModelName
    version: int | None = Field(None, ge=1)
    alias: Literal["production", "latest"] = "production"


class ShowVersionResult(Contract):
    """The full metadata of one version."""

    metadata: ModelVersion
    production: bool
    latest: bool
    report_key: str


class PromoteVersionRequest(Contract):
    """Point production at ``version`` (idempotent per ``request_id``), provided production is
    still the version the caller saw (``expected_production``)."""

    model: ModelName
    version: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=2000)
    request_id: str = Field(min_length=1, max_length=500)
    requested_at: datetime
    expected_production: ExpectedProduction | None = Field(
        None,
        description="production as the caller saw it; another one is refused "
        "(ProductionMovedError naming it). None: not checked (requests from before this field)",
    )


class PromoteVersionResult(Contract):
    """Where production pointed before and after."""

    model: ModelName
    version: int
    previous_version: int | None
    changed: bool
    event: AliasEvent | None = Field(None, description="None when already production")


class RollbackRequest(Contract):
    """Move production back to the version it replaced (idempotent per ``request_id``), one
    step back from the version the caller saw (``expected_production``)."""

    model: ModelName
    reason: str = Field(min_length=1, max_length=2000)
    request_id: str = Field(min_length=1, max_length=500)
    requested_at: datetime
    expected_production: int | None = Field(
        None,
        ge=1,
        description="production as the caller saw it; another one is refused "
        "(ProductionMovedError naming it). None (requests from before this field): the "
        "version production was when the rollback first read it",
    )


class RollbackResult(Contract):
    """The move that was made."""

    model: ModelName
    from_version: int
    to_version: int
    event: AliasEvent


DownloadWhat = Literal["model.pt", "model.onnx", "report"]
"""A model file, or the report: ``report.md`` and every picture under ``evidence/``."""


class DownloadLinksRequest(Contract):
    """Time-limited links to files of one version (by number, or the one an alias points to)."""

    model: ModelName
    version: int | None = Field(None, ge=1)
    alias: Literal["production", "latest"] = "production"
    what: DownloadWhat = "model.pt"
    expires_seconds: int = Field(
        900, ge=60, le=24 * 3600, description="how long the links work (recorded in history)"
    )


class DownloadLink(Contract):
    """One file: where it goes (relative path), a GET link, and the digest it must have."""

    name: str = Field(description="artifact name, e.g. model.onnx or evidence/PR_curve.png")
    url: str
    sha256: str = Field(description="from the version's metadata.json: verify the download")
    size: int


class DownloadLinksResult(Contract):
    """The resolved version and one link per file; digests come from its metadata."""

    model: ModelName
    version: int
    production: bool
    files: list[DownloadLink]
    expires_at: datetime
