"""The starting weights of a training run, as something ``YOLO(...)`` accepts.

- ``architecture``: an Ultralytics yaml shipped with the package (train from scratch);
- ``weights``: an entry of the pretrained-weights catalog, vouched for by its record's sha256;
- ``s3``: a ``.pt`` in object storage, vouched for by the digest the request carries;
- ``registry``: a version (number or alias) of our registry, vouched for by its metadata.

A request without a base gets the deployment's (``SENTINEL_DEFAULT_BASE``, else
``yolov8n.yaml``). Files come from the worker's weights cache
(:mod:`activities.infra.weights_cache`): downloaded once per digest, and their bytes checked
against the vouching digest before anything unpickles them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.contracts.bases import (
    DEFAULT_ARCHITECTURE,
    ArchitectureBase,
    BaseModelSpec,
    BaseRecord,
    CatalogBase,
    S3Base,
    base_text,
    parse_base,
)
from activities.contracts.tasks import ARCHITECTURES
from activities.contracts.weights import TRAINABLE_TASK
from activities.infra.errors import BadInputError, ConfigurationError
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.infra.weights_cache import CachedWeights, cached_weights


@dataclass(frozen=True)
class PreparedBase:
    """What ``YOLO(...)`` loads (a verified local path or a yaml name), and its record."""

    source: str
    record: BaseRecord
    downloaded: bool = False


def default_base(settings: Settings) -> BaseModelSpec:
    """The deployment's base for requests that name none (ConfigurationError if unreadable)."""
    if not settings.default_base:
        return ArchitectureBase(name=DEFAULT_ARCHITECTURE)
    try:
        return parse_base(settings.default_base)
    except ValueError as exc:
        raise ConfigurationError(f"SENTINEL_DEFAULT_BASE is not a base: {exc}") from None


def _architecture(spec: ArchitectureBase) -> PreparedBase:
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(spec.name)
    except (FileNotFoundError, OSError) as exc:
        raise BadInputError(
            f"unknown architecture {spec.name!r}: not an Ultralytics model yaml ({exc})"
        ) from None
    return PreparedBase(spec.name, BaseRecord(spec=spec.name))


def _catalog(spec: CatalogBase, store: ObjectStore, settings: Settings, task: str) -> CachedWeights:
    from activities.weights import Catalog

    record = Catalog(store, settings.models_bucket, keyring(settings)).require(spec.name)
    if record.task != task:  # refused before a byte is downloaded
        raise BadInputError(
            f"catalog weights {spec.name!r} are a {record.task} model but the dataset is a "
            f"{task} dataset (pick {task} weights, see 'sentinel weights list')"
        )
    return cached_weights(
        store, settings, bucket=record.bucket, key=record.key, sha256=record.sha256
    )


def prepare_base(
    spec: BaseModelSpec | None, store: ObjectStore, settings: Settings, task: str = "detect"
) -> PreparedBase:
    """The verified starting point of ``spec`` for a ``task`` dataset (None: the deployment's
    default base for detect, the task's architecture otherwise, ``ARCHITECTURES``)."""
    if spec is None and task != TRAINABLE_TASK:
        spec = ArchitectureBase(name=ARCHITECTURES[task])
    spec = spec or default_base(settings)
    if isinstance(spec, ArchitectureBase):
        return _architecture(spec)
    if isinstance(spec, CatalogBase):
        cached = _catalog(spec, store, settings, task)
    elif isinstance(spec, S3Base):
        cached = cached_weights(
            store, settings, bucket=spec.bucket, key=spec.key, sha256=spec.sha256
        )
    else:
        from activities.registry import cached_registry_model

        _, cached = cached_registry_model(store, settings, spec.model, spec.version)
    record = BaseRecord(spec=base_text(spec), sha256=cached.sha256)
    return PreparedBase(str(cached.path), record, downloaded=cached.downloaded)


def load_model(
    source: str, label: str | None = None, task: str = TRAINABLE_TASK
) -> Any:  # an ultralytics.YOLO
    """``YOLO(source)``; a file that is not an Ultralytics ``task`` checkpoint is bad input.

    ``label`` names the model in errors (default: the file name). The return type is ``Any``:
    Ultralytics is not type-checked.
    """
    from ultralytics import YOLO

    name = label or Path(source).name
    try:
        model = YOLO(source)
    except Exception as exc:  # torch/pickle/yaml errors of many kinds
        raise BadInputError(f"base model {name!r} cannot be loaded: {exc}") from None
    if model.task != task:
        raise BadInputError(f"base model {name!r} is a {model.task} model, not {task}")
    return model
