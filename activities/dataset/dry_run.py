"""Validating a dataset prefix without assembling it: what ``sentinel data validate`` shows.

The same listing, layout reading, verification filter, image and label checks and split as
an assembly (:func:`~activities.dataset.assemble.inspect_source`), then a summary instead of a
manifest: nothing is stored (the worker's local object cache aside, kept under
``SENTINEL_CACHE_MAX_GB``) and no registry is read.
Data a retrain could not use is a result (``can_train=False`` and the reason), not an error,
so that the caller still sees the table of findings.
"""

from __future__ import annotations

from collections import Counter

from activities.contracts.dataset import SPLITS, AssembleRequest
from activities.contracts.inspection import DatasetValidation
from activities.dataset.assemble import Inspection, inspect_source
from activities.dataset.cache_bound import enforce_bound, objects_in_use
from activities.infra.errors import BadInputError
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore


def class_counts(inspection: Inspection) -> dict[str, dict[str, int]]:
    """Split -> class name -> boxes, over the images that passed validation."""
    names = inspection.class_names
    counts: dict[str, Counter[str]] = {split: Counter() for split in SPLITS}
    for image in inspection.images:
        for line in image.labels:
            cls = int(line.split(maxsplit=1)[0])
            counts[image.split][names[cls] if cls < len(names) else str(cls)] += 1
    return {split: dict(sorted(found.items())) for split, found in counts.items()}


def validate(
    store: ObjectStore,
    settings: Settings,
    request: AssembleRequest,
    *,
    progress: Progress = no_progress,
) -> DatasetValidation:
    """What :func:`~activities.dataset.assemble.assemble` would make of ``request``."""
    bucket = request.bucket or settings.data_bucket
    base = DatasetValidation(
        dataset=request.dataset,
        bucket=bucket,
        prefix=request.prefix.strip("/"),
        format=request.format,
        can_train=False,
    )
    try:
        with objects_in_use(settings.cache_dir):  # no eviction while objects are read
            inspection = inspect_source(store, settings, request, progress=progress)
    except BadInputError as exc:  # nothing to tabulate: empty, no layout, nothing verified
        return base.model_copy(update={"problem": str(exc)})
    finally:
        enforce_bound(settings.cache_dir, settings.cache_max_bytes)
    problem: str | None = None
    try:
        split_counts = inspection.usable_counts(request)
    except BadInputError as exc:
        problem = str(exc)
        split_counts = {s: sum(1 for i in inspection.images if i.split == s) for s in SPLITS}
    report = inspection.report
    return base.model_copy(
        update={
            "listed": inspection.listed,
            "images": inspection.candidates,
            "unverified": inspection.unverified,
            "usable": len(inspection.images),
            "class_names": list(inspection.class_names),
            "findings": {kind: n for kind, n in report.summary().items() if n},
            "examples": {kind: list(found) for kind, found in report.examples.items()},
            "split_counts": split_counts,
            "class_counts": class_counts(inspection),
            "can_train": problem is None,
            "problem": problem,
        }
    )
