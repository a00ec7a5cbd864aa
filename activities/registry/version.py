"""A version's ``metadata.json`` built from the publish request (a pure function)."""

from __future__ import annotations

from activities.contracts.gate import GateDecision
from activities.contracts.registry import (
    ArtifactRecord,
    ModelSignature,
    ModelVersion,
    PublishRequest,
)


def version_metadata(
    request: PublishRequest,
    version: int,
    gate: GateDecision,
    artifacts: dict[str, ArtifactRecord],
    model_signature: ModelSignature | None = None,
) -> ModelVersion:
    """``metadata.json`` of ``version``: the run's request, final gate and stored files."""
    ev = request.evaluation
    return ModelVersion(
        model=request.model,
        version=version,
        parent_version=request.parent_version,
        created_at=request.created_at,
        workflow_id=request.workflow_id,
        run_id=request.run_id,
        task=request.snapshot.task,
        snapshot=request.snapshot,
        class_names=request.snapshot.class_names,
        hyperparameters=request.hyperparameters,
        epochs=request.epochs,
        resumed_from_epoch=request.resumed_from_epoch,
        candidate=ev.candidate,
        champion=ev.champion,
        champion_version=ev.champion_version,
        ci=ev.ci,
        per_class_ci=ev.per_class_ci,
        comparison=ev.evidence.comparison if ev.evidence else None,
        test_images=ev.images,
        test_instances=ev.instances,
        gate=gate,
        parity=request.export.parity,
        onnx_opset=request.export.opset,
        onnx_dynamic=request.export.dynamic,
        imgsz=request.export.imgsz,
        artifacts=artifacts,
        source_weights=request.candidate,
        versions={**ev.versions, **request.export.versions},
        base=request.base,
        imported=request.imported,
        model_signature=model_signature,
    )
