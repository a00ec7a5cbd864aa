"""Registered versions for prediction: resolved through the registry, loaded only verified.

The digest of ``model.pt`` / ``model.onnx`` comes from the version's ``metadata.json`` (itself
read with its recorded sha256 verified); the file is downloaded into the local
content-addressed weights cache and checked against that digest before anything loads it, so
no unvouched bytes are ever unpickled.
"""

from __future__ import annotations

from pathlib import Path

from activities.contracts.predict import PredictBackend, ResolvedModel, StoredObject
from activities.infra.errors import NotFoundError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore, sha256_file
from activities.registry.core import Registry

ARTIFACT_OF: dict[PredictBackend, str] = {"pytorch": "model.pt", "onnx": "model.onnx"}


def resolve(
    registry: Registry, model: str, version: int | str, backend: PredictBackend
) -> ResolvedModel:
    """``version`` (number or alias) of ``model`` with the artifact the backend runs."""
    number = registry.resolve_version(model, version)
    meta = registry.metadata(model, number)
    artifact = ARTIFACT_OF[backend]
    record = meta.artifacts.get(artifact)
    if record is None:
        raise NotFoundError(
            f"{model} v{number} has no {artifact}: the {backend} backend cannot run it"
        )
    return ResolvedModel(
        model=model,
        version=number,
        artifact="model.pt" if artifact == "model.pt" else "model.onnx",
        weights=StoredObject(bucket=registry.bucket, key=record.key, sha256=record.sha256),
        class_names=list(meta.class_names),
        imgsz=meta.imgsz,
    )


def local_weights(store: ObjectStore, settings: Settings, model: ResolvedModel) -> Path:
    """The version's artifact in the local weights cache, verified against its digest.

    A cached file is re-hashed before reuse; a download that does not hash to the recorded
    digest raises IntegrityError (non-retryable) and leaves nothing in the cache.
    """
    ref = model.weights
    suffix = Path(model.artifact).suffix
    path = settings.cache_dir / "weights" / f"{ref.sha256}{suffix}"
    if path.is_file() and sha256_file(path) == ref.sha256:
        return path
    store.get_file(ref.bucket, ref.key, path, expected_sha256=ref.sha256)
    return path
