"""Temporal activities of the weights catalog (CPU queue): inspect, record, list."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.weights import (
    AddWeightsResult,
    InspectWeightsRequest,
    InspectWeightsResult,
    ListWeightsRequest,
    ListWeightsResult,
    RecordWeightsRequest,
)
from activities.infra.errors import translate_errors
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.infra.weights_cache import cached_weights
from activities.weights.catalog import Catalog


class WeightsActivities:
    """Catalog activities bound to one store and the configured models bucket."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.catalog = Catalog(store, settings.models_bucket, keyring(settings))

    @activity.defn(name=names.INSPECT_WEIGHTS)
    @translate_errors
    def inspect_weights(self, request: InspectWeightsRequest) -> InspectWeightsResult:
        """Task and classes of a ``.pt``, read only after its bytes matched the request's digest."""
        from activities.infra.yolo_env import bootstrap_offline
        from activities.weights.checkpoint import inspect_file

        bootstrap_offline()
        ref = request.weights
        cached = cached_weights(
            self.store, self.settings, bucket=ref.bucket, key=ref.key, sha256=ref.sha256
        )
        return inspect_file(cached.path, f"{ref.bucket}/{ref.key}")

    @activity.defn(name=names.RECORD_WEIGHTS)
    @translate_errors
    def record_weights(self, request: RecordWeightsRequest) -> AddWeightsResult:
        """Create the catalog entry (the same bytes again: a no-op; other bytes: refused)."""
        self.store.check_bucket(self.settings.models_bucket)
        return self.catalog.add(request)

    @activity.defn(name=names.LIST_WEIGHTS)
    @translate_errors
    def list_weights(self, request: ListWeightsRequest) -> ListWeightsResult:
        """The catalog's entries, by name."""
        return self.catalog.list(request.limit)
