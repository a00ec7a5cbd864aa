"""The versioned model registry in ``settings.models_bucket``.

* :mod:`.layout` object keys; :mod:`.core` reading (versions, metadata, verified loading);
* :mod:`.publish` the exactly-once publish protocol; :mod:`.aliases` production moves;
* :mod:`.report` report.md (:mod:`.report_evidence` its evidence sections); :mod:`.evidence`
  the pictures copied into ``v{N}/evidence/``; :mod:`.version` metadata.json;
* :mod:`.activity` the Temporal activities (download links included).
"""

from __future__ import annotations

from pathlib import Path

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
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
    registry = Registry(store, settings.models_bucket)
    number = registry.resolve_version(model, version)
    return registry.load_model(model, number, Path(dest))


def production_version(store: ObjectStore, settings: Settings, model: str) -> int | None:
    """The version production points to, or None."""
    return Registry(store, settings.models_bucket).production_version(model)


__all__ = ["Registry", "load_registry_model", "production_version"]
