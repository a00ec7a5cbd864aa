"""Assembly: list a source prefix, read its layout, validate, split, hash, store a manifest.

Every object read (labels, control files, images) goes through the content-addressed
:class:`~activities.dataset.cache.ObjectCache`, so a re-assembly of a grown source downloads
only what is new, and a materialization right after an assembly downloads nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from activities.contracts.dataset import SPLITS, AssembleRequest, AssembleResult
from activities.dataset.cache import ObjectCache, Wanted
from activities.dataset.formats import Candidate, Source, read_source
from activities.dataset.manifest import Manifest, ManifestImage, ManifestReport, store_manifest
from activities.dataset.split import assign_split
from activities.dataset.validation import (
    MIN_IMAGE_SIDE,
    ImageCheck,
    Report,
    check_image,
    clean_label_lines,
    coco_to_yolo,
)
from activities.dataset.verified import Verified, list_source, verified_candidates
from activities.infra import metrics
from activities.infra.errors import BadInputError, NotFoundError, TransientStorageError
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

CHECK_NAMESPACE = f"image-check/v1/min{MIN_IMAGE_SIDE}"


@dataclass
class _Source:
    """The listed prefix and cached access to its objects."""

    store: ObjectStore
    cache: ObjectCache
    bucket: str
    prefix: str
    objects: dict[str, ObjectInfo]
    progress: Progress
    downloaded: int = 0

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    def shas(self, rels: Iterable[str], stage: str) -> dict[str, str]:
        """Relative key -> sha256 of each object, downloading those not cached yet."""
        unique = list(dict.fromkeys(rels))
        start = len(self.prefix) + 1
        cached = self.cache.lookup(
            self.store, self.bucket, [(self.key(r), self.objects[r].etag) for r in unique]
        )
        found = {key[start:]: sha for key, sha in cached.items()}
        missing = [Wanted(self.key(r), self.objects[r].etag) for r in unique if r not in found]
        try:
            fetched = self.cache.fetch(
                self.store, self.bucket, missing, progress=self.progress, stage=stage
            )
        except NotFoundError as exc:  # deleted since the listing: a new attempt lists again
            raise TransientStorageError(f"source changed during assembly: {exc}") from exc
        self.downloaded += len(missing)
        found.update({key[start:]: sha for key, sha in fetched.items()})
        return found

    def fetch(self, rels: list[str]) -> dict[str, bytes]:
        """Bytes of small objects (labels, data.yaml, COCO JSON) by relative key."""
        return {
            rel: self.cache.path(sha).read_bytes() for rel, sha in self.shas(rels, "labels").items()
        }


def _labels_for(
    candidate: Candidate, check: ImageCheck, nc: int, key: str, report: Report
) -> list[str]:
    if candidate.coco_boxes is not None:
        width, height = candidate.coco_size or (check.width, check.height)
        lines: list[str] = []
        for cls, bbox, where in candidate.coco_boxes:
            if cls is None:
                report.add("class_out_of_range", key, f"{where}: category not among the classes")
                continue
            line = coco_to_yolo(cls, bbox, width, height, key, where, report)
            if line is not None:
                lines.append(line)
        return lines
    return clean_label_lines(candidate.label_lines or [], nc, key, report)


def _image_checks(source: _Source, shas: set[str]) -> dict[str, ImageCheck]:
    """Decode each image once per content: results are remembered in the cache index."""
    known = source.cache.load_facts(CHECK_NAMESPACE, shas)
    checks = {sha: ImageCheck(**json.loads(value)) for sha, value in known.items()}
    todo = sorted(shas - set(checks))
    for done, sha in enumerate(todo, start=1):
        checks[sha] = check_image(source.cache.path(sha))
        if done % 50 == 0 or done == len(todo):
            source.progress("decoded", done, len(todo))
    source.cache.save_facts(
        CHECK_NAMESPACE, {sha: json.dumps(dataclasses.asdict(checks[sha])) for sha in todo}
    )
    return checks


def _list_source(
    store: ObjectStore, settings: Settings, request: AssembleRequest, progress: Progress
) -> _Source:
    """Check the buckets, list the source prefix (BadInputError when it is empty)."""
    bucket = request.bucket or settings.data_bucket
    prefix = request.prefix.strip("/")
    store.check_bucket(bucket)
    if settings.data_bucket != bucket:
        store.check_bucket(settings.data_bucket)
    objects = list_source(store, bucket, prefix)
    progress("listed", len(objects), len(objects))
    if not objects:
        raise BadInputError(f"prefix {prefix!r} in bucket {bucket!r} is empty")
    return _Source(store, ObjectCache(settings.cache_dir), bucket, prefix, objects, progress)


def _manifest_images(
    source: _Source,
    read: Source,
    kept: list[Candidate],
    request: AssembleRequest,
    test_prefix: str | None,
    report: Report,
) -> list[ManifestImage]:
    """Validate ``kept`` (problems go to ``report``), drop duplicates, split stably."""
    shas = source.shas([c.rel for c in kept], "downloaded")
    checks = _image_checks(source, set(shas.values()))
    first_of: dict[str, str] = {}
    images: list[ManifestImage] = []
    for done, candidate in enumerate(sorted(kept, key=lambda c: c.rel), start=1):
        if done % 50 == 0 or done == len(kept):
            source.progress("validated", done, len(kept))
        key, sha = source.key(candidate.rel), shas[candidate.rel]
        check = checks[sha]
        if not check.ok:
            report.add(check.kind, key, check.detail)
            continue
        if sha in first_of:
            report.add("duplicate_image", key, f"same content as {first_of[sha]}")
            continue
        first_of[sha] = key
        labels = _labels_for(candidate, check, len(read.class_names), key, report)
        if not labels:
            report.add("image_without_label", key, "kept as a background image")
        split = assign_split(
            candidate.rel,
            request.split_ratios,
            test_prefix=test_prefix,
            folder_split=candidate.folder_split,
        )
        images.append(
            ManifestImage(
                key=key,
                etag=source.objects[candidate.rel].etag,
                sha256=sha,
                split=split,
                width=check.width,
                height=check.height,
                labels=labels,
            )
        )
    return images


def _check_usable(
    images: list[ManifestImage],
    request: AssembleRequest,
    where: str,
    unverified: int,
    report: Report,
) -> dict[str, int]:
    """Images per split; BadInputError below the minimum counts or without any box."""
    counts: dict[str, int] = {s: sum(1 for i in images if i.split == s) for s in SPLITS}
    minimum = request.min_counts.model_dump()
    short = [
        f"{s} has {counts[s]} (minimum {minimum[s]})" for s in SPLITS if counts[s] < minimum[s]
    ]
    if short:
        raise BadInputError(
            f"too few images in {where} after validation: {'; '.join(short)} "
            f"({len(images)} usable, {unverified} unverified; {report.describe()})"
        )
    if images and not any(image.labels for image in images):
        # Backgrounds alone teach a detector nothing; almost always a class-map mistake.
        raise BadInputError(
            f"no labelled boxes left in {where} after validation: all "
            f"{len(images)} images are backgrounds ({report.describe()})"
        )
    return counts


def _verified(source: _Source, read: Source, request: AssembleRequest) -> Verified:
    """The verified candidates (BadInputError when there are none)."""
    bucket, prefix = source.bucket, source.prefix
    verified = verified_candidates(
        source.store, bucket, prefix, read.candidates, request.verified_key
    )
    if not verified.kept:
        raise BadInputError(
            f"no verified images under {bucket}/{prefix}: {len(read.candidates)} images, "
            f"{verified.unverified} unverified (check {verified.list_key} or the COCO "
            "'verified' flags)"
        )
    return verified


def _count_findings(dataset: str, report: Report) -> None:
    """Operator metrics: what validation fixed or skipped, per kind."""
    for kind, count in report.summary().items():
        if count:
            metrics.ASSEMBLY_FINDINGS.labels(dataset, kind).inc(count)


def assemble(
    store: ObjectStore,
    settings: Settings,
    request: AssembleRequest,
    *,
    progress: Progress = no_progress,
) -> AssembleResult:
    """Assemble ``request`` into a stored snapshot, or find the identical one.

    Lists the prefix, reads its layout, keeps verified images, downloads what the local cache
    lacks, validates (fixing or skipping problems into a report), splits stably, fails with
    BadInputError when a split is below ``request.min_counts``, and stores the manifest at
    ``snapshots/{dataset}/{sha256}.json`` in the data bucket unless it exists already.
    """
    source = _list_source(store, settings, request, progress)
    bucket, prefix = source.bucket, source.prefix
    report = Report(max_examples=request.max_examples)
    read = read_source(request.format, source.objects, source.fetch, request.class_names, report)
    verified = _verified(source, read, request)
    test_prefix = request.test_prefix
    if test_prefix and not test_prefix.endswith("/"):
        test_prefix += "/"
    images = _manifest_images(source, read, verified.kept, request, test_prefix, report)
    _count_findings(request.dataset, report)  # before the usability check: failures count too
    counts = _check_usable(images, request, f"{bucket}/{prefix}", verified.unverified, report)
    manifest = Manifest(
        dataset=request.dataset,
        bucket=bucket,
        prefix=prefix,
        format=request.format,
        class_names=read.class_names,
        split_ratios=request.split_ratios.model_dump(),
        test_prefix=test_prefix,
        images=images,
        counts=counts,
        report=ManifestReport(
            listed=len(source.objects),
            unverified=verified.unverified,
            counts=report.summary(),
            examples=report.examples,
        ),
    )
    snapshot, reused = store_manifest(store, settings.data_bucket, manifest)
    progress("stored", 1, 1)
    log.info(
        "dataset %s: snapshot %s (%s), %d images %s, downloaded %d, %s",
        request.dataset, snapshot.sha256[:12], "reused" if reused else "new", len(images),
        counts, source.downloaded, report.describe(),
    )  # fmt: skip
    return AssembleResult(
        snapshot=snapshot,
        counts=counts,
        class_names=read.class_names,
        report=report.summary(),
        unverified=verified.unverified,
        reused=reused,
    )
