"""The versioned model registry in ``settings.models_bucket``.

* :mod:`.layout` object keys; :mod:`.core` reading (versions, metadata, verified loading);
* :mod:`.publish` the exactly-once publish protocol; :mod:`.aliases` production moves;
* :mod:`.report` report.md (:mod:`.report_evidence` its evidence sections); :mod:`.evidence`
  the pictures copied into ``v{N}/evidence/``; :mod:`.version` metadata.json;
* :mod:`.activity` the Temporal activities (download links included).
"""

from __future__ import annotations

from pathlib import Path

from activities.infra.errors import IntegrityError, NotFoundError
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.infra.weights_cache import CachedWeights, cached_weights
from activities.registry.core import Registry


def load_registry_model(
    store: ObjectStore, settings: Settings, model: str, version: int | str, dest: Path
) -> Path:
    """Download ``model`` v``version``'s ``model.pt`` to ``dest``, verified first.

    ``version``: a number (``3``, ``"3"``, ``"v3"``) or an alias (``"production"``,
    ``"latest"``). The sha256 comes from the version's ``metadata.json``; a mismatch raises
    :class:`~activities.infra.errors.IntegrityError` (non-retryable) and leaves nothing at ``dest``.
    NotFoundError when the version (or alias) does not exist.
    """
    registry = Registry(store, settings.models_bucket, keyring(settings))
    number = registry.resolve_version(model, version)
    return registry.load_model(model, number, Path(dest))


def cached_registry_model(
    store: ObjectStore, settings: Settings, model: str, version: int | str
) -> tuple[int, CachedWeights]:
    """``(number, local copy)`` of ``model`` v``version``'s ``model.pt`` in the weights cache.

    Like :func:`load_registry_model`, verified against the sha256 of the version's
    ``metadata.json`` (IntegrityError naming it on mismatch); downloaded once per worker.
    """
    registry = Registry(store, settings.models_bucket, keyring(settings))
    number = registry.resolve_version(model, version)
    record = registry.metadata(model, number).artifacts.get("model.pt")
    if record is None:
        raise NotFoundError(f"{model} v{number} has no artifact 'model.pt'")
    try:
        cached = cached_weights(
            store, settings, bucket=registry.bucket, key=record.key, sha256=record.sha256
        )
    except IntegrityError as exc:
        raise IntegrityError(
            f"refusing to load {model} v{number} model.pt: {exc} (metadata.json records "
            f"sha256 {record.sha256[:12]}…)"
        ) from None
    return number, cached


def production_version(store: ObjectStore, settings: Settings, model: str) -> int | None:
    """The version production points to, or None."""
    return Registry(store, settings.models_bucket, keyring(settings)).production_version(model)


__all__ = ["Registry", "cached_registry_model", "load_registry_model", "production_version"]
