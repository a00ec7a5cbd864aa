"""Assembly: list a source prefix, read its layout, validate, split, hash, store a manifest.

Every object read (labels, control files, images) goes through the content-addressed
:class:`~activities.dataset.cache.ObjectCache`, so a re-assembly of a grown source downloads
only what is new, and a materialization right after an assembly downloads nothing.

Over ~300 lines on purpose: the assembly in the order it runs (inspect, check, split, hash,
store); listing, formats, validation and the cache live in sibling modules.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field

from activities.contracts.dataset import SPLITS, AssembleRequest, AssembleResult
from activities.dataset.cache import ObjectCache
from activities.dataset.cache_bound import enforce_bound, objects_in_use
from activities.dataset.formats import Candidate, Source
from activities.dataset.manifest import Manifest, ManifestImage, ManifestReport, store_manifest
from activities.dataset.source import SourceAccess
from activities.dataset.split import assign_split
from activities.dataset.task_source import coco_task_lines, read_for_task, two_classes
from activities.dataset.tasks import TaskSpec, add_task_line
from activities.dataset.validation import (
    MIN_IMAGE_SIDE,
    ImageCheck,
    Labels,
    Report,
    check_image,
)
from activities.dataset.verified import Verified, list_source, verified_candidates
from activities.infra import metrics, timings
from activities.infra.errors import BadInputError
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)


def _check_namespace(max_pixels: int) -> str:
    """Where image checks are remembered: a check is a function of the content and the caps."""
    return f"image-check/v2/min{MIN_IMAGE_SIDE}/max{max_pixels}"


def _labels_for(
    candidate: Candidate, check: ImageCheck, nc: int, key: str, report: Report, spec: TaskSpec
) -> Labels:
    labels = Labels(key, report)
    if candidate.class_id is not None:  # classify: the folder's class, one line
        labels.kept.append(str(candidate.class_id))
        return labels
    if candidate.coco_boxes is not None and spec.task in ("segment", "pose"):
        coco_task_lines(labels, candidate, check, nc, spec)
        return labels
    if candidate.coco_boxes is not None:
        width, height = candidate.coco_size or (check.width, check.height)
        for kind, where, why in candidate.coco_dropped:
            labels.drop(kind, where, why, why)
        for cls, bbox, where in candidate.coco_boxes:
            labels.add_coco_box(cls, bbox, width, height, where)
        return labels
    for number, raw in enumerate(candidate.label_lines or [], start=1):
        add_task_line(labels, raw, nc, f"line {number}", spec)
    return labels


def _image_checks(source: SourceAccess, shas: set[str], max_pixels: int) -> dict[str, ImageCheck]:
    """Decode each image once per content: results are remembered in the cache index."""
    namespace = _check_namespace(max_pixels)
    known = source.cache.load_facts(namespace, shas)
    checks = {sha: ImageCheck(**json.loads(value)) for sha, value in known.items()}
    todo = sorted(shas - set(checks))
    for done, sha in enumerate(todo, start=1):
        checks[sha] = check_image(source.cache.path(sha), max_pixels)
        if done % 50 == 0 or done == len(todo):
            source.progress("decoded", done, len(todo))
    source.cache.save_facts(
        namespace, {sha: json.dumps(dataclasses.asdict(checks[sha])) for sha in todo}
    )
    return checks


def _list_source(
    store: ObjectStore, settings: Settings, request: AssembleRequest, progress: Progress
) -> SourceAccess:
    """Check the buckets, list the source prefix (BadInputError when it is empty)."""
    bucket = request.bucket or settings.data_bucket
    prefix = request.prefix.strip("/")
    store.check_bucket(bucket)
    if settings.data_bucket != bucket:
        store.check_bucket(settings.data_bucket)
    objects = list_source(store, bucket, prefix, progress)
    progress("listed", len(objects), len(objects))
    if not objects:
        raise BadInputError(f"prefix {prefix!r} in bucket {bucket!r} is empty")
    cache = ObjectCache(settings.cache_dir)
    return SourceAccess(
        store, cache, bucket, prefix, objects, progress, settings.max_document_bytes
    )


def _within_byte_cap(
    source: SourceAccess, kept: list[Candidate], max_bytes: int, report: Report
) -> list[Candidate]:
    """``kept`` without the images listed over ``max_bytes`` (reported, never downloaded)."""
    fitting: list[Candidate] = []
    for candidate in kept:
        size = source.objects[candidate.rel].size
        if size > max_bytes:
            detail = f"{size} bytes > {max_bytes} bytes (SENTINEL_MAX_IMAGE_MB)"
            report.add("image_too_large", source.key(candidate.rel), detail)
        else:
            fitting.append(candidate)
    return fitting


def _judged_labels(
    candidate: Candidate, check: ImageCheck, nc: int, key: str, request: AssembleRequest,
    report: Report, spec: TaskSpec,
) -> list[str] | None:  # fmt: skip
    """The image's label lines, or None when it must be left out (see ``validation``)."""
    labels = _labels_for(candidate, check, nc, key, report, spec)
    if labels.incomplete and (request.bad_labels == "skip_image" or not labels.kept):
        report.add("image_with_bad_labels", key, labels.describe_dropped())
        return None
    if labels.incomplete:
        report.add("kept_with_bad_labels", key, labels.describe_dropped())
    elif not labels.kept:
        report.add("image_without_label", key, "kept as a background image")
    return labels.kept


def _manifest_images(
    source: SourceAccess,
    read: Source,
    kept: list[Candidate],
    request: AssembleRequest,
    settings: Settings,
    report: Report,
    spec: TaskSpec,
) -> list[ManifestImage]:
    """Validate ``kept`` (problems go to ``report``), drop duplicates, split stably."""
    kept = _within_byte_cap(source, kept, settings.max_image_bytes, report)
    with timings.span("fetch_images"):
        shas = source.shas([c.rel for c in kept], "downloaded")
    if spec.task == "classify":
        ambiguous = two_classes(kept, shas, report)
        kept = [c for c in kept if shas[c.rel] not in ambiguous]
    with timings.span("image_checks"):
        checks = _image_checks(source, set(shas.values()), settings.max_image_pixels)
    test_prefix = _test_prefix(request)
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
        nc = len(read.class_names)
        labels = _judged_labels(candidate, check, nc, key, request, report, spec)
        if labels is None:
            continue  # left out: its content stays free for a duplicate with good labels
        first_of[sha] = key
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


def _test_prefix(request: AssembleRequest) -> str | None:
    test_prefix = request.test_prefix
    if test_prefix and not test_prefix.endswith("/"):
        test_prefix += "/"
    return test_prefix


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
    if not images:
        raise BadInputError(
            f"no usable images in {where} after validation ({unverified} unverified; "
            f"{report.describe()})"
        )
    if not any(image.labels for image in images):
        # Backgrounds alone teach a detector nothing; almost always a class-map mistake.
        raise BadInputError(
            f"no labelled boxes left in {where} after validation: all "
            f"{len(images)} images are backgrounds ({report.describe()})"
        )
    return counts


def _verified(source: SourceAccess, read: Source, request: AssembleRequest) -> Verified:
    """The verified candidates (BadInputError when there are none)."""
    bucket, prefix = source.bucket, source.prefix
    verified = verified_candidates(
        source.store, bucket, prefix, read.candidates, request.verified_key,
        max_bytes=source.max_document_bytes,
    )  # fmt: skip
    if not verified.kept:
        raise BadInputError(
            f"no verified images under {bucket}/{prefix}: {len(read.candidates)} images, "
            f"{verified.unverified} unverified (check {verified.list_key} or the COCO "
            "'verified' flags)"
        )
    return verified


@dataclass
class Inspection:
    """A source prefix read, filtered to verified images and validated (nothing stored yet).

    Only what a manifest or a validation summary needs is kept: the listing, the candidates
    and the verified list are let go once the images are validated (memory bound).
    """

    source: SourceAccess
    class_names: list[str]
    listed: int
    candidates: int
    unverified: int
    report: Report
    images: list[ManifestImage]
    test_prefix: str | None
    spec: TaskSpec = field(default_factory=TaskSpec)

    @property
    def where(self) -> str:
        return f"{self.source.bucket}/{self.source.prefix}"

    def usable_counts(self, request: AssembleRequest) -> dict[str, int]:
        """Images per split; BadInputError when a retrain could not use them."""
        return _check_usable(self.images, request, self.where, self.unverified, self.report)


def inspect_source(
    store: ObjectStore,
    settings: Settings,
    request: AssembleRequest,
    *,
    progress: Progress = no_progress,
) -> Inspection:
    """List, read the layout, keep verified images, download what the cache lacks, validate and
    split: everything an assembly does before deciding and storing (BadInputError when the
    prefix is empty or has no verified image).

    The caller holds :func:`~activities.dataset.cache_bound.objects_in_use` meanwhile (the
    objects read must not be evicted under it).
    """
    with timings.span("list"):
        source = _list_source(store, settings, request, progress)
    report = Report(max_examples=request.max_examples)
    with timings.span("read_layout"):
        read, spec = read_for_task(source, request, report)
    with timings.span("verified_list"):
        verified = _verified(source, read, request)
    listed = len(source.objects)
    images = _manifest_images(source, read, verified.kept, request, settings, report, spec)
    inspection = Inspection(
        source=source,
        class_names=list(read.class_names),
        listed=listed,
        candidates=len(read.candidates),
        unverified=verified.unverified,
        report=report,
        images=images,
        test_prefix=_test_prefix(request),
        spec=spec,
    )
    del read, verified.kept[:]  # from here on only the images are held, not the listing
    source.objects.clear()
    return inspection


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

    :func:`inspect_source`, then fail with BadInputError when a split is below
    ``request.min_counts`` (or no image or no box is left), and store the manifest at
    ``snapshots/{dataset}/{sha256}.json`` in the data bucket unless it exists already. Then
    the local cache is brought under ``SENTINEL_CACHE_MAX_GB`` (:mod:`.cache_bound`).
    """
    with objects_in_use(settings.cache_dir):  # no eviction while objects are read
        result = _assemble(store, settings, request, progress)
    with timings.span("cache_bound"):
        enforce_bound(settings.cache_dir, settings.cache_max_bytes)
    return result


def _assemble(
    store: ObjectStore, settings: Settings, request: AssembleRequest, progress: Progress
) -> AssembleResult:
    inspection = inspect_source(store, settings, request, progress=progress)
    source, report, images = inspection.source, inspection.report, inspection.images
    _count_findings(request.dataset, report)  # before the usability check: failures count too
    counts = inspection.usable_counts(request)
    manifest = Manifest(
        dataset=request.dataset,
        bucket=source.bucket,
        prefix=source.prefix,
        format=request.format,
        class_names=inspection.class_names,
        split_ratios=request.split_ratios.model_dump(),
        test_prefix=inspection.test_prefix,
        task=request.task,
        kpt_shape=list(inspection.spec.kpt_shape) if inspection.spec.kpt_shape else None,
        flip_idx=list(inspection.spec.flip_idx) if inspection.spec.flip_idx else None,
        images=images,
        counts=counts,
        report=ManifestReport(
            listed=inspection.listed,
            unverified=inspection.unverified,
            counts=report.summary(),
            examples=report.examples,
        ),
    )
    with timings.span("store_manifest"):
        snapshot, reused = store_manifest(
            store, settings.data_bucket, manifest, max_bytes=settings.max_document_bytes
        )
    progress("stored", 1, 1)
    log.info(
        "dataset %s: snapshot %s (%s), %d images %s, downloaded %d, %s",
        request.dataset, snapshot.sha256[:12], "reused" if reused else "new", len(images),
        counts, source.downloaded, report.describe(),
    )  # fmt: skip
    return AssembleResult(
        snapshot=snapshot,
        counts=counts,
        class_names=inspection.class_names,
        report=report.summary(),
        unverified=inspection.unverified,
        reused=reused,
    )
