"""The foundation slice: one real activity against S3 (list a dataset prefix, count it)."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.inventory import InventoryRequest, InventoryResult
from activities.errors import BadInputError, translate_errors
from activities.settings import Settings
from activities.storage import ObjectStore

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class InventoryActivities:
    """Activities bound to one store (dependency injection keeps tests free of globals)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.INVENTORY_DATASET)
    @translate_errors
    def inventory_dataset(self, request: InventoryRequest) -> InventoryResult:
        """List ``prefix`` in the data bucket and count images, labels and bytes."""
        self.store.check_bucket(self.settings.data_bucket)
        objects = images = labels = total = 0
        for info in self.store.list(self.settings.data_bucket, request.prefix):
            objects += 1
            total += info.size
            lower = info.key.lower()
            images += lower.endswith(IMAGE_SUFFIXES)
            labels += lower.endswith(".txt")
            if objects % 500 == 0:
                activity.heartbeat(objects)
        if objects == 0:
            raise BadInputError(
                f"prefix {request.prefix!r} in bucket {self.settings.data_bucket!r} is empty"
            )
        return InventoryResult(
            prefix=request.prefix, objects=objects, images=images, labels=labels, total_bytes=total
        )
