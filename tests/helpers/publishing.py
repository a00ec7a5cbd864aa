"""Publishing stand-in versions into a real registry without training (tests and bench)."""

from __future__ import annotations

import uuid

from activities.contracts.registry import PublishRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.factories import AT, SNAPSHOT, evaluation, export_result, gate, weights
from tests.helpers.tiny_onnx import onnx_bytes
from workflows.gate import apply_parity


def stored_publish_request(
    store: ObjectStore,
    settings: Settings,
    model: str,
    payload: bytes,
    *,
    onnx_payload: bytes | None = None,
    workflow_id: str | None = None,
) -> PublishRequest:
    """A promoting publish request whose weights (``payload``) and ONNX file are stored in the
    runs bucket, as a finished run would have left them."""
    workflow_id = workflow_id or f"retrain-{model}-{uuid.uuid4().hex[:6]}"
    prefix = f"runs/{workflow_id}"
    pt = store.put_bytes(settings.runs_bucket, f"{prefix}/weights/best.pt", payload)
    onnx = store.put_bytes(
        settings.runs_bucket,
        f"{prefix}/export/m.onnx",
        onnx_payload or onnx_bytes(b"onnx" + payload),
    )
    pt_ref = weights(pt.key, pt.sha256 or "", settings.runs_bucket)
    exported = export_result(weights(onnx.key, onnx.sha256 or "", settings.runs_bucket), pt_ref)
    return PublishRequest(
        model=model,
        workflow_id=workflow_id,
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        created_at=AT,
        candidate=pt_ref,
        export=exported,
        evaluation=evaluation(0.6).model_copy(update={"model": model}),
        gate=apply_parity(gate(True), exported.parity),
        snapshot=SNAPSHOT,
        hyperparameters={"epochs": 3},
        epochs=3,
    )
