"""The snapshot manifest: stored in S3 as JSON, identified by the sha256 of its content.

The hash covers only what defines the dataset a training sees: schema version, dataset name,
source bucket, class names, and per image its key, content sha256, split and (canonical)
label lines, in key order; for a task other than detect also the task, ``kpt_shape`` and
``flip_idx`` (a detect manifest hashes as it did before tasks existed). Timestamps, etags,
image sizes, the source format and the validation report are recorded but not hashed, so
the same source state always gives the same hash and a repeated assembly finds the snapshot
it already wrote.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.contracts.dataset import SnapshotRef, SplitName
from activities.contracts.tasks import Task
from activities.infra.errors import BadInputError, IntegrityError
from activities.infra.storage import ObjectStore

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 256 * 2**20
"""Cap of a manifest read whole when the caller has no settings (``SENTINEL_MAX_DOCUMENT_MB``)."""


class ManifestImage(BaseModel):
    """One image of a snapshot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    etag: str
    sha256: str
    split: SplitName
    width: int
    height: int
    labels: list[str]


class ManifestReport(BaseModel):
    """The validation report of the assembly that wrote the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    listed: int
    unverified: int
    counts: dict[str, int]
    examples: dict[str, list[str]] = Field(default_factory=dict)


class Manifest(BaseModel):
    """Everything needed to rebuild a dataset; never sent through Temporal payloads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    dataset: str
    bucket: str
    prefix: str
    format: str
    class_names: list[str]
    split_ratios: dict[str, float]
    test_prefix: str | None = None
    task: Task = "detect"
    kpt_shape: list[int] | None = None
    flip_idx: list[int] | None = None
    images: list[ManifestImage]
    counts: dict[str, int]
    report: ManifestReport
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())

    def content(self) -> dict[str, Any]:
        """The content-defining fields (what the hash covers)."""
        content: dict[str, Any] = {
            "schema_version": self.schema_version,
            "dataset": self.dataset,
            "bucket": self.bucket,
            "class_names": list(self.class_names),
            "images": [
                {"key": i.key, "sha256": i.sha256, "split": i.split, "labels": list(i.labels)}
                for i in sorted(self.images, key=lambda i: i.key)
            ],
        }
        if self.task != "detect":  # detect snapshots keep the hashes they always had
            content.update(task=self.task, kpt_shape=self.kpt_shape, flip_idx=self.flip_idx)
        return content

    def sha256(self) -> str:
        """The content hash: sha256 of the canonical JSON of :meth:`content`."""
        return hashlib.sha256(canonical_json(self.content())).hexdigest()

    def to_bytes(self) -> bytes:
        """The stored form (canonical JSON of every field)."""
        return canonical_json(self.model_dump(mode="json"))


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal values always give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def split_digest(manifest: Manifest, split: SplitName) -> str:
    """The identity of one split: sha256 of its images (key, content sha256, labels), in key
    order. Equal digests mean two runs were evaluated on the same images and labels."""
    images = [
        {"key": i.key, "sha256": i.sha256, "labels": list(i.labels)}
        for i in sorted(manifest.images, key=lambda i: i.key)
        if i.split == split
    ]
    return hashlib.sha256(canonical_json(images)).hexdigest()


def snapshot_key(dataset: str, sha256: str) -> str:
    return f"snapshots/{dataset}/{sha256}.json"


def store_manifest(
    store: ObjectStore, bucket: str, manifest: Manifest, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[SnapshotRef, bool]:
    """Write ``manifest`` unless a snapshot with the same hash exists; returns (ref, reused).

    A manifest over ``max_bytes`` is refused (BadInputError): every reader would refuse it.
    """
    sha = manifest.sha256()
    key = snapshot_key(manifest.dataset, sha)
    reused = store.exists(bucket, key)
    if not reused:
        data = manifest.to_bytes()
        if len(data) > max_bytes:
            raise BadInputError(
                f"the snapshot manifest of {len(manifest.images)} images would be "
                f"{len(data) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.1f} MiB limit of "
                "objects read whole (SENTINEL_MAX_DOCUMENT_MB): split the dataset or raise it"
            )
        try:
            store.put_bytes(bucket, key, data, content_type="application/json", if_absent=True)
        except FileExistsError:
            reused = True  # a concurrent assembly of the same state wrote it first
    ref = SnapshotRef(
        dataset=manifest.dataset,
        bucket=bucket,
        key=key,
        sha256=sha,
        class_names=list(manifest.class_names),
        counts=dict(manifest.counts),
        task=manifest.task,
        kpt_shape=manifest.kpt_shape,
    )
    return ref, reused


def load_manifest(
    store: ObjectStore, snapshot: SnapshotRef, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Manifest:
    """Read and check the manifest ``snapshot`` names (its content must hash to its sha256).

    Read whole: one over ``max_bytes`` is an ObjectTooLargeError.
    """
    data = store.get_bytes(snapshot.bucket, snapshot.key, max_bytes=max_bytes)
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(
            f"{snapshot.bucket}/{snapshot.key} is not a valid snapshot manifest "
            f"({exc.error_count()} errors)"
        ) from None
    actual = manifest.sha256()
    if actual != snapshot.sha256:
        raise IntegrityError(
            f"{snapshot.bucket}/{snapshot.key} failed verification: content sha256 "
            f"{actual[:12]}… != snapshot {snapshot.sha256[:12]}… (manifest changed or tampered)"
        )
    return manifest
