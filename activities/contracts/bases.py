"""Where a training run's starting weights come from: the base kinds and their text form.

The text form is what people type (``sentinel retrain start --base``) and what a deployment
sets as its default (``SENTINEL_DEFAULT_BASE``); :func:`parse_base` turns it into a contract,
:func:`base_text` back:

=====================================  ==========================================================
``yolov8n.yaml``                       an Ultralytics architecture: train from scratch
``weights:NAME``                       an entry of the pretrained-weights catalog
                                       (``sentinel weights add``)
``registry:MODEL@ALIAS`` / ``@N``      a version of our registry (``registry:REF``: the model
                                       being trained)
``s3://BUCKET/KEY#sha256=HEX``         a ``.pt`` in object storage, with the digest it must have
=====================================  ==========================================================

Every base that is a file carries (or resolves to) a digest that vouches for its bytes: the
request's own (S3), the catalog record (weights) or the version's metadata (registry). Workers
verify the bytes against it before unpickling anything.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from activities.contracts.common import Contract, ModelName, ObjectKey, Sha256, is_sha256

_ARCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.ya?ml$")
_WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

DEFAULT_ARCHITECTURE = "yolov8n.yaml"
"""The base of a request that names none, when the deployment sets no default."""

BASE_EXAMPLES = (
    "yolov8s.yaml",
    "weights:yolo11n.pt",
    "registry:detector@production",
    "registry:detector@3",
    "s3://pretrained/yolo11n.pt#sha256=<64 hex digits>",
)
"""One example of each text form (shown by ``--help`` and the docs)."""


def _check_weights_name(value: str) -> str:
    if not _WEIGHTS_NAME.match(value) or ".." in value:
        raise ValueError(
            f"invalid weights name {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 'yolo11n.pt')"
        )
    return value


WeightsName = Annotated[str, AfterValidator(_check_weights_name)]
"""The name of a catalog entry (one safe path segment, e.g. ``yolo11n.pt``)."""


class RegistryBase(Contract):
    """Fine-tune a version from our model registry."""

    kind: Literal["registry"] = "registry"
    model: ModelName
    version: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="a number ('3', 'v3') or an alias ('production', 'latest')",
    )


class S3Base(Contract):
    """Fine-tune a ``.pt`` stored in object storage; its bytes must hash to ``sha256``."""

    kind: Literal["s3"] = "s3"
    bucket: str = Field(min_length=3, max_length=63)
    key: ObjectKey
    sha256: Sha256 = Field(description="the digest the object must have (checked before use)")

    @field_validator("key")
    @classmethod
    def _pt(cls, value: str) -> str:
        if not value.endswith(".pt"):
            raise ValueError(f"base model key must name a .pt file: {value!r}")
        return value


class ArchitectureBase(Contract):
    """Train from scratch from an Ultralytics architecture yaml (e.g. ``yolov8n.yaml``)."""

    kind: Literal["architecture"] = "architecture"
    name: str

    @field_validator("name")
    @classmethod
    def _yaml_name(cls, value: str) -> str:
        if not _ARCH.match(value):
            raise ValueError(
                f"architecture must be a bare yaml file name like 'yolov8n.yaml': {value!r}"
            )
        return value


class CatalogBase(Contract):
    """Fine-tune an entry of the pretrained-weights catalog (``sentinel weights add``)."""

    kind: Literal["weights"] = "weights"
    name: WeightsName


BaseModelSpec = Annotated[
    RegistryBase | S3Base | ArchitectureBase | CatalogBase, Field(discriminator="kind")
]
"""Where the starting weights come from."""


class BaseRecord(Contract):
    """The base a run actually started from: its text form and the digest of its bytes."""

    spec: str = Field(description="text form, e.g. 'weights:yolo11n.pt' or 'yolov8n.yaml'")
    sha256: Sha256 | None = Field(None, description="None for an architecture (no file)")


def _s3(text: str) -> S3Base:
    location, _, fragment = text.removeprefix("s3://").partition("#")
    bucket, _, key = location.partition("/")
    digest = fragment.removeprefix("sha256=")
    if not fragment.startswith("sha256=") or not is_sha256(digest):
        raise ValueError(
            f"base {text!r} lacks its digest: write s3://BUCKET/KEY#sha256=HEX with the "
            "file's sha256 (64 lowercase hex digits, e.g. from 'sha256sum FILE')"
        )
    if not _BUCKET.match(bucket) or not key:
        raise ValueError(f"base {text!r} must name a bucket and a key: s3://BUCKET/KEY#sha256=HEX")
    return S3Base(bucket=bucket, key=key, sha256=digest)


def _registry(text: str, model: str | None) -> RegistryBase:
    reference = text.removeprefix("registry:")
    name, at, version = reference.rpartition("@")
    if not at:
        if model is None:
            raise ValueError(f"base {text!r} names no model: write registry:MODEL@ALIAS or @N")
        name, version = model, reference
    return RegistryBase(model=name, version=version)


def parse_base(text: str, *, model: str | None = None) -> BaseModelSpec:
    """The base that ``text`` names (see the module docstring); ValueError naming the forms.

    ``model``: the model being trained, for ``registry:REF`` without a model name.
    """
    text = text.strip()
    if text.startswith("weights:"):
        return CatalogBase(name=text.removeprefix("weights:"))
    if text.startswith("registry:"):
        return _registry(text, model)
    if text.startswith("s3://"):
        return _s3(text)
    if _ARCH.match(text):
        return ArchitectureBase(name=text)
    raise ValueError(
        f"unknown base {text!r}: use an architecture yaml, weights:NAME, "
        "registry:MODEL@ALIAS|N or s3://BUCKET/KEY#sha256=HEX (e.g. "
        + ", ".join(BASE_EXAMPLES)
        + ")"
    )


def base_text(spec: BaseModelSpec) -> str:
    """The text form of ``spec`` (``parse_base(base_text(spec)) == spec``)."""
    if isinstance(spec, CatalogBase):
        return f"weights:{spec.name}"
    if isinstance(spec, RegistryBase):
        return f"registry:{spec.model}@{spec.version}"
    if isinstance(spec, S3Base):
        return f"s3://{spec.bucket}/{spec.key}#sha256={spec.sha256}"
    return spec.name
