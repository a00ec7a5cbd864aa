"""Snapshot -> local Ultralytics dataset directory, built from the content-addressed cache.

Layout (deterministic, so a resumed training finds the same paths)::

    {cache_dir}/datasets/{dataset}/{sha256[:16]}/
        images/{train,val,test}/{stem}_{sha256[:12]}{suffix}
        labels/{train,val,test}/{stem}_{sha256[:12]}.txt
        data.yaml       (absolute ``path``, train/val/test, names; pose: kpt_shape, flip_idx)
        .complete       (written last; the directory is renamed into place after it)

A classification snapshot is laid out as Ultralytics reads one, ``{split}/{class}/{name}``
(every class folder in every split, empty ones too), and is used by its directory: its
``data_yaml`` is the root (``model.train(data=<dir>)``).

Images are hard-linked from ``{cache_dir}/objects`` (copied across file systems), so a second
materialization, or one of a grown snapshot, downloads only images it has never seen. The
directory is built under a temporary name and renamed into place, so a killed process never
leaves a half dataset at the final path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import yaml

from activities.contracts.common import is_sha256
from activities.contracts.dataset import SPLITS, SnapshotRef
from activities.dataset.cache import ObjectCache, Wanted, sweep_stale
from activities.dataset.cache_bound import enforce_bound, lease, objects_in_use
from activities.dataset.manifest import Manifest, ManifestImage, load_manifest
from activities.infra import timings
from activities.infra.errors import BadInputError
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

COMPLETE = ".complete"


@dataclass(frozen=True)
class MaterializedDataset:
    """A local Ultralytics dataset ready for ``model.train(data=str(data_yaml))``.

    Leased while this object lives (or until :meth:`release`): the cache bound never evicts
    a snapshot in use (:mod:`activities.dataset.cache_bound`).
    """

    root: Path
    data_yaml: Path  # what Ultralytics' ``data=`` takes: the root itself for classify
    counts: dict[str, int] = field(default_factory=dict)
    downloaded: int = 0
    lease: IO[bytes] | None = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        """End the lease: the snapshot may be evicted from now on."""
        if self.lease is not None:
            self.lease.close()

    def __enter__(self) -> MaterializedDataset:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def dataset_dir(settings: Settings, snapshot: SnapshotRef) -> Path:
    """The deterministic directory of ``snapshot`` in the local cache."""
    if "/" in snapshot.dataset or "\\" in snapshot.dataset or snapshot.dataset in ("", ".", ".."):
        raise BadInputError(f"invalid dataset name {snapshot.dataset!r} in snapshot reference")
    if not is_sha256(snapshot.sha256):
        raise BadInputError(f"invalid sha256 {snapshot.sha256!r} in snapshot reference")
    return settings.cache_dir / "datasets" / snapshot.dataset / snapshot.sha256[:16]


def local_name(image: ManifestImage) -> str:
    """File name of ``image`` inside its split folder (unique: content hash in the name)."""
    path = PurePosixPath(image.key)
    return f"{path.stem}_{image.sha256[:12]}{path.suffix.lower()}"


def _read_complete(root: Path, sha256: str) -> dict[str, int] | None:
    try:
        marker = json.loads((root / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("sha256") != sha256 or not (root / "data.yaml").is_file():
        return None
    return {s: int(marker.get("counts", {}).get(s, 0)) for s in SPLITS}


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _place_classified(
    staging: Path, manifest: Manifest, image: ManifestImage, cache: ObjectCache
) -> None:
    """Link one classification image into its class folder (``{split}/{class}/``)."""
    folder = manifest.class_names[int(image.labels[0])]
    _link(str(cache.path(image.sha256)), str(staging / image.split / folder / local_name(image)))


def _build(
    staging: Path, root: Path, manifest: Manifest, cache: ObjectCache, on_progress: Progress
) -> dict[str, int]:
    for split in SPLITS:
        if manifest.task == "classify":
            for name in manifest.class_names:
                (staging / split / name).mkdir(parents=True, exist_ok=True)
        else:
            for kind in ("images", "labels"):
                (staging / kind / split).mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = dict.fromkeys(SPLITS, 0)
    total = len(manifest.images)
    # Plain strings and os calls: one link and one small write per image, and on a
    # re-materialization of a grown snapshot this loop is most of the work (pathlib
    # objects cost more than the system calls here).
    objects, sep = str(cache.objects), os.sep
    images = {split: str(staging / "images" / split) for split in SPLITS}
    labels = {split: str(staging / "labels" / split) for split in SPLITS}
    for done, image in enumerate(manifest.images, start=1):
        if manifest.task == "classify":
            _place_classified(staging, manifest, image, cache)
        else:
            name, sha = local_name(image), image.sha256
            _link(f"{objects}{sep}{sha[:2]}{sep}{sha}", f"{images[image.split]}{sep}{name}")
            stem = os.path.splitext(name)[0]  # as PurePosixPath(name).with_suffix(".txt")
            with open(f"{labels[image.split]}{sep}{stem}.txt", "w", encoding="utf-8") as label:
                label.write("".join(f"{line}\n" for line in image.labels))
        counts[image.split] += 1
        if done % 200 == 0 or done == total:
            on_progress("linked", done, total)
    data = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "nc": len(manifest.class_names),
        "names": dict(enumerate(manifest.class_names)),
    }
    if manifest.kpt_shape is not None:
        data["kpt_shape"] = list(manifest.kpt_shape)
        if manifest.flip_idx is not None:
            data["flip_idx"] = list(manifest.flip_idx)
    (staging / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    marker = {"sha256": manifest.sha256(), "dataset": manifest.dataset, "counts": counts}
    (staging / COMPLETE).write_text(json.dumps(marker, sort_keys=True))
    return counts


def materialize_snapshot(
    store: ObjectStore,
    settings: Settings,
    snapshot: SnapshotRef,
    *,
    on_progress: Progress = no_progress,
) -> MaterializedDataset:
    """Turn ``snapshot`` into a local dataset directory, downloading only uncached images.

    Idempotent and safe to run concurrently for the same snapshot (the first complete
    directory wins); ``downloaded`` counts the images fetched from object storage by this call.
    ``on_progress(stage, done, total)``: stages ``downloaded``, ``linked``. The result holds
    the snapshot's lease (release it, or use it as a context manager, when done); the cache is
    brought under ``SENTINEL_CACHE_MAX_GB`` after a build.
    """
    root = dataset_dir(settings, snapshot).resolve()
    leased = lease(root)  # before looking: an eviction of this snapshot finishes first
    try:
        data = root if snapshot.task == "classify" else root / "data.yaml"
        with timings.span("mat_lookup"):
            counts = _read_complete(root, snapshot.sha256)
        if counts is not None:
            return MaterializedDataset(root, data, counts, 0, leased)
        with objects_in_use(settings.cache_dir):
            counts, downloaded = _materialize(store, settings, snapshot, root, on_progress)
    except BaseException:
        leased.close()
        raise
    with timings.span("mat_cache_bound"):
        enforce_bound(settings.cache_dir, settings.cache_max_bytes)
    return MaterializedDataset(root, data, counts, downloaded, leased)


def _materialize(
    store: ObjectStore, settings: Settings, snapshot: SnapshotRef, root: Path, progress: Progress
) -> tuple[dict[str, int], int]:
    """Download what the cache lacks and build the directory: ``(counts, downloaded)``."""
    with timings.span("mat_load_manifest"):
        manifest = load_manifest(store, snapshot, max_bytes=settings.max_document_bytes)
    cache = ObjectCache(settings.cache_dir)
    missing: dict[str, Wanted] = {}
    with timings.span("mat_fetch"):
        for image in manifest.images:
            if not cache.touch(image.sha256) and image.sha256 not in missing:
                missing[image.sha256] = Wanted(image.key, image.etag, image.sha256)
        cache.fetch(store, manifest.bucket, list(missing.values()), progress=progress)
    root.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(root.parent, ".*.tmp-*")
    if root.exists() and _read_complete(root, snapshot.sha256) is None:
        shutil.rmtree(root)  # left by something else than this function: rebuild it
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        with timings.span("mat_link_farm"):
            counts = _build(staging, root, manifest, cache, progress)
        try:
            os.rename(staging, root)
        except OSError:
            if _read_complete(root, snapshot.sha256) is None:
                raise  # not a concurrent winner: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts, len(missing)
