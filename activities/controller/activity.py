"""The controller's check: how many verified images has production not been trained on?

Listing-based and cheap: YOLO/Roboflow images are counted from the listing (no downloads),
COCO reads only its annotation file. Production's images come from its snapshot manifest.
"""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.controller import CountNewRequest, CountNewResult
from activities.dataset.formats import Candidate, is_image, read_source
from activities.dataset.manifest import load_manifest
from activities.dataset.validation import Report
from activities.dataset.verified import list_source, verified_candidates
from activities.infra.errors import translate_errors
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.registry.aliases import repair_production_mirror
from activities.registry.core import Registry


class ControllerActivities:
    """Counting activity of the scheduled retrain check."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    def _verified_keys(self, request: CountNewRequest) -> set[str]:
        dataset = request.dataset
        bucket = dataset.bucket or self.settings.data_bucket
        prefix = dataset.prefix.strip("/")
        objects = list_source(self.store, bucket, prefix)
        if dataset.format == "coco":

            def fetch(rels: list[str]) -> dict[str, bytes]:
                cap = self.settings.max_document_bytes
                return {
                    rel: self.store.get_bytes(bucket, f"{prefix}/{rel}", max_bytes=cap)
                    for rel in rels
                }

            found = read_source("coco", objects, fetch, dataset.class_names, Report()).candidates
        else:  # from the listing alone: no label downloads for a count
            found = [Candidate(rel) for rel in objects if is_image(rel)]
        verified = verified_candidates(
            self.store, bucket, prefix, found, dataset.verified_key,
            max_bytes=self.settings.max_document_bytes,
        )  # fmt: skip
        return {f"{prefix}/{c.rel}" for c in verified.kept}

    @activity.defn(name=names.COUNT_NEW_VERIFIED)
    @translate_errors
    def count_new_verified(self, request: CountNewRequest) -> CountNewResult:
        """Verified source images minus the images of production's snapshot."""
        verified = self._verified_keys(request)
        registry = Registry(self.store, self.settings.models_bucket, keyring(self.settings))
        # The scheduled check is the one registry reader that runs without anyone asking:
        # a production.json left stale by a crash is repaired within one interval.
        repair_production_mirror(registry, request.model)
        version = registry.production_version(request.model)
        trained: set[str] = set()
        if version is not None:
            snapshot = registry.metadata(request.model, version).snapshot
            manifest = load_manifest(
                self.store, snapshot, max_bytes=self.settings.max_document_bytes
            )
            trained = {image.key for image in manifest.images}
        return CountNewResult(
            verified=len(verified),
            new_verified=len(verified - trained),
            production_version=version,
        )
