"""The starting weights of a training run, as something ``YOLO(...)`` accepts.

- ``architecture``: an Ultralytics yaml shipped with the package (train from scratch);
- ``s3``: a ``.pt`` downloaded from object storage and verified (expected or recorded sha256);
- ``registry``: a version (number or alias) of our model registry, downloaded and verified by
  ``activities.registry.load_registry_model``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from activities.contracts.training import ArchitectureBase, RegistryBase, S3Base
from activities.infra.errors import BadInputError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)


def _architecture(spec: ArchitectureBase) -> str:
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(spec.name)
    except (FileNotFoundError, OSError) as exc:
        raise BadInputError(
            f"unknown architecture {spec.name!r}: not an Ultralytics model yaml ({exc})"
        ) from None
    return spec.name


def _s3(spec: S3Base, store: ObjectStore, dest_dir: Path) -> str:
    dest = dest_dir / Path(spec.key).name
    store.get_file(spec.bucket, spec.key, dest, expected_sha256=spec.sha256)
    return str(dest)


def _registry(spec: RegistryBase, store: ObjectStore, settings: Settings, dest_dir: Path) -> str:
    from activities.registry import load_registry_model

    dest = dest_dir / f"{spec.model}-{spec.version}.pt"
    return str(load_registry_model(store, settings, spec.model, spec.version, dest))


def prepare_base(
    spec: RegistryBase | S3Base | ArchitectureBase,
    store: ObjectStore,
    settings: Settings,
    dest_dir: Path,
) -> str:
    """A local ``.pt`` path or an architecture yaml name for ``YOLO(...)``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(spec, ArchitectureBase):
        return _architecture(spec)
    if isinstance(spec, S3Base):
        return _s3(spec, store, dest_dir)
    return _registry(spec, store, settings, dest_dir)


def load_model(source: str) -> Any:  # an ultralytics.YOLO (ultralytics is not type-checked)
    """``YOLO(source)``; a file that is not an Ultralytics detection checkpoint is bad input."""
    from ultralytics import YOLO

    try:
        model = YOLO(source)
    except Exception as exc:  # torch/pickle/yaml errors of many kinds
        raise BadInputError(f"base model {Path(source).name!r} cannot be loaded: {exc}") from None
    if model.task != "detect":
        raise BadInputError(f"base model {Path(source).name!r} is a {model.task} model, not detect")
    return model
