"""Catalog records: ``weights/catalog/{name}.json`` in the models bucket.

An entry never changes: a name names the same bytes for good (a request that says
``weights:yolo11n.pt`` today trains from what it trained from yesterday). Adding the same bytes
under the same name again is a no-op; other bytes under a taken name are refused. Records are
created with If-None-Match, so two concurrent adds of one name cannot both win. Each record is
signed (:mod:`activities.infra.signing`): its sha256 vouches for weights that a worker will
unpickle, so a record someone wrote or edited without the key is an IntegrityError.
"""

from __future__ import annotations

from activities.contracts.weights import (
    CATALOG_PREFIX,
    AddWeightsResult,
    ListWeightsResult,
    RecordWeightsRequest,
    WeightsRecord,
    catalog_key,
)
from activities.infra.errors import BadInputError, IntegrityError, NotFoundError
from activities.infra.settings import Settings
from activities.infra.signing import Keyring, keyring
from activities.infra.storage import ObjectStore


class Catalog:
    """The pretrained-weights catalog in one bucket."""

    def __init__(self, store: ObjectStore, bucket: str, keys: Keyring | None = None) -> None:
        self.store = store
        self.bucket = bucket
        self.keys = keys or keyring(Settings())

    def get(self, name: str) -> WeightsRecord | None:
        """The record of ``name`` (sha256- and signature-verified), or None."""
        key = catalog_key(name)
        try:
            data = self.store.get_bytes(self.bucket, key)
        except NotFoundError:
            return None
        return self.keys.verified_model(data, WeightsRecord, f"{self.bucket}/{key}")

    def require(self, name: str) -> WeightsRecord:
        """The record of ``name``; NotFoundError naming how to add it."""
        record = self.get(name)
        if record is None:
            raise NotFoundError(
                f"no weights named {name!r} in the catalog ({self.bucket}/{CATALOG_PREFIX}): "
                f"add them with 'sentinel weights add FILE --name {name}' "
                "(see 'sentinel weights list')"
            )
        return record

    def add(self, request: RecordWeightsRequest) -> AddWeightsResult:
        """Create the entry (idempotent for the same bytes); BadInputError for other bytes."""
        entry = request.entry
        existing = self.get(entry.name)
        if existing is not None:
            same = self._same(existing, entry.weights.sha256)
            return AddWeightsResult(record=same, created=False)
        info = self.store.stat(entry.weights.bucket, entry.weights.key)
        if info is None:
            raise NotFoundError(f"{entry.weights.bucket}/{entry.weights.key} does not exist")
        record = WeightsRecord(
            name=entry.name,
            bucket=entry.weights.bucket,
            key=entry.weights.key,
            sha256=entry.weights.sha256,
            size=info.size,
            task=request.inspected.task,
            class_names=list(request.inspected.class_names),
            imgsz=request.inspected.imgsz,
            source_file=entry.source_file,
            added_at=entry.added_at,
        )
        body = self.keys.signed_json(record)
        try:
            self.store.put_bytes(
                self.bucket,
                catalog_key(entry.name),
                body,
                content_type="application/json",
                if_absent=True,
            )
        except FileExistsError:  # a concurrent add of the same name won
            theirs = self.require(entry.name)
            return AddWeightsResult(record=self._same(theirs, entry.weights.sha256), created=False)
        return AddWeightsResult(record=record, created=True)

    @staticmethod
    def _same(existing: WeightsRecord, sha256: str) -> WeightsRecord:
        if existing.sha256 != sha256:
            raise BadInputError(
                f"the catalog already has other weights named {existing.name!r} (sha256 "
                f"{existing.sha256[:12]}…, from {existing.source_file}): an entry never "
                "changes; add these under another --name"
            )
        return existing

    def list(self, limit: int) -> ListWeightsResult:
        """Entries sorted by name, at most ``limit``."""
        keys = sorted(
            info.key
            for info in self.store.list(self.bucket, CATALOG_PREFIX)
            if info.key.endswith(".json")
        )
        records = []
        untrusted: dict[str, str] = {}
        for key in keys[:limit]:
            name = key.removeprefix(CATALOG_PREFIX).removesuffix(".json")
            try:
                record = self.get(name)
            except IntegrityError as exc:  # marked, never trusted (nor fatal to the listing)
                untrusted[name] = str(exc)
                continue
            if record is not None:
                records.append(record)
        return ListWeightsResult(entries=records, total=len(keys), untrusted=untrusted)
