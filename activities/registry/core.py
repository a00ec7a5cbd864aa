"""Reading the registry: which versions exist, their metadata, aliases, verified model loading.

The truth is in immutable or conditionally created objects: a version exists when its
``metadata.json`` exists; production is the newest entry of the append-only alias history.
``production.json`` and ``latest.json`` are pointers kept in sync after every change (see
:meth:`Registry.sync_latest` and :func:`activities.registry.aliases.sync_production`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from activities.contracts.registry import AliasEvent, LatestAlias, ModelVersion
from activities.infra.errors import BadInputError, IntegrityError, NotFoundError
from activities.infra.settings import Settings
from activities.infra.signing import Keyring, keyring
from activities.infra.storage import ObjectStore
from activities.registry import layout

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
POINTER_SYNC_ROUNDS = 20
SIGNED: tuple[type[BaseModel], ...] = (ModelVersion, AliasEvent)
"""Documents that vouch for weights or for production: written signed, read only verified
(:mod:`activities.infra.signing`)."""


@dataclass
class Scan:
    """What one listing of ``models/{name}/`` shows."""

    versions: set[int] = field(default_factory=set)  # with metadata.json: they exist
    claims: set[int] = field(default_factory=set)
    history: list[int] = field(default_factory=list)  # alias history sequence numbers, sorted

    @property
    def highest_claimed(self) -> int:
        return max(self.versions | self.claims, default=0)

    @property
    def pending(self) -> list[int]:
        """Claimed version numbers without metadata (in progress, or left by a dead run)."""
        return sorted(self.claims - self.versions)


def dump(model: BaseModel) -> bytes:
    """Stable JSON of a contract (sorted keys, for humans and for byte-identical retries)."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=True, indent=2).encode() + b"\n"


class Registry:
    """The model registry in one bucket.

    ``keys`` signs and verifies metadata and alias history; None: the process settings'
    ``SENTINEL_SIGNING_KEY_FILE`` (read when first needed).
    """

    def __init__(self, store: ObjectStore, bucket: str, keys: Keyring | None = None) -> None:
        self.store = store
        self.bucket = bucket
        self._keys = keys

    @property
    def keys(self) -> Keyring:
        if self._keys is None:
            self._keys = keyring(Settings())
        return self._keys

    def encode(self, model: BaseModel) -> bytes:
        """The stored bytes of ``model``: signed JSON for :data:`SIGNED` documents."""
        return self.keys.signed_json(model) if isinstance(model, SIGNED) else dump(model)

    # ------------------------------------------------------------------ low level
    def read(self, key: str, model_type: type[M]) -> M | None:
        """``key`` parsed as ``model_type`` (sha256-verified, and signature-verified for
        :data:`SIGNED` types), or None when it does not exist."""
        try:
            data = self.store.get_bytes(self.bucket, key)
        except NotFoundError:
            return None
        if issubclass(model_type, SIGNED):
            return self.keys.verified_model(data, model_type, f"{self.bucket}/{key}")
        try:
            return model_type.model_validate_json(data)
        except ValidationError as exc:
            raise IntegrityError(
                f"{self.bucket}/{key} is not a valid {model_type.__name__}: "
                f"{exc.errors()[0]['msg']}"
            ) from None

    def scan(self, model: str) -> Scan:
        """One listing of the model's prefix, parsed."""
        scan = Scan()
        for info in self.store.list(self.bucket, layout.model_prefix(model)):
            if (n := layout.parse_metadata_key(info.key)) is not None:
                scan.versions.add(n)
            elif (n := layout.parse_claim_key(info.key)) is not None:
                scan.claims.add(n)
            elif (n := layout.parse_history_key(info.key)) is not None:
                scan.history.append(n)
        scan.history.sort()
        return scan

    # ------------------------------------------------------------------ versions
    def metadata(self, model: str, version: int) -> ModelVersion:
        """The metadata of an existing version; NotFoundError otherwise."""
        meta = self.read(layout.metadata_key(model, version), ModelVersion)
        if meta is None:
            raise NotFoundError(f"model {model!r} has no version {version} in {self.bucket!r}")
        if meta.model != model or meta.version != version:
            raise IntegrityError(
                f"{layout.metadata_key(model, version)} describes {meta.model} v{meta.version}"
            )
        return meta

    def resolve_version(self, model: str, ref: int | str) -> int:
        """``3``, ``"3"``, ``"v3"``, ``"production"`` or ``"latest"`` -> a version number."""
        text = str(ref).strip().lower()
        if text in ("production", "latest"):
            scan = self.scan(model)
            found = (
                self.production_version(model, scan)
                if text == "production"
                else max(scan.versions, default=None)
            )
            if found is None:
                raise NotFoundError(f"model {model!r} has no {text} version in {self.bucket!r}")
            return found
        digits = text[1:] if text.startswith("v") else text
        if not digits.isdigit() or int(digits) < 1:
            raise BadInputError(
                f"invalid version {ref!r}: use a number like 3 or 'v3', 'production' or 'latest'"
            )
        return int(digits)

    def load_model(self, model: str, version: int, dest: Path, artifact: str = "model.pt") -> Path:
        """Download ``artifact`` of a version to ``dest``, verified against its metadata sha256.

        A mismatch (tampered or corrupted object) raises IntegrityError (non-retryable) and
        leaves nothing at ``dest``.
        """
        meta = self.metadata(model, version)  # signature-verified: it vouches for the bytes
        record = meta.artifacts.get(artifact)
        if record is None:
            raise NotFoundError(f"{model} v{version} has no artifact {artifact!r}")
        try:
            self.store.get_file(self.bucket, record.key, dest, expected_sha256=record.sha256)
        except IntegrityError as exc:
            raise IntegrityError(
                f"refusing to load {model} v{version} {artifact}: {exc} (metadata.json records "
                f"sha256 {record.sha256[:12]}…)"
            ) from None
        return dest

    # ------------------------------------------------------------------ aliases
    def production_event(self, model: str, scan: Scan | None = None) -> AliasEvent | None:
        """The newest production move (the truth; ``production.json`` mirrors it)."""
        scan = scan or self.scan(model)
        if not scan.history:
            return None
        event = self.read(layout.history_key(model, scan.history[-1]), AliasEvent)
        if event is None:  # listed a moment ago: deleted by hand
            raise IntegrityError(f"alias history of {model!r} changed while reading it")
        return event

    def production_version(self, model: str, scan: Scan | None = None) -> int | None:
        event = self.production_event(model, scan)
        return event.version if event else None

    def sync_latest(self, model: str) -> int | None:
        """Point ``latest.json`` at the newest existing version; returns it.

        Write, then list again: if a newer version appeared meanwhile, write again. Whoever
        writes last has seen every version whose metadata preceded its write, so concurrent
        publishers converge on the true newest.
        """
        written: int | None = None
        for _ in range(POINTER_SYNC_ROUNDS):
            newest = max(self.scan(model).versions, default=None)
            if newest is None or newest == written:
                return newest
            meta = self.metadata(model, newest)
            pointer = LatestAlias(version=newest, created_at=meta.created_at)
            self.store.put_bytes(
                self.bucket,
                layout.latest_key(model),
                dump(pointer),
                content_type="application/json",
            )
            written = newest
        log.warning("latest.json of %s still moving after %d rounds", model, POINTER_SYNC_ROUNDS)
        return written
