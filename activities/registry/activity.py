"""Temporal activities of the model registry (CPU queue): publish, list, show, promote,
rollback, and download links (for ``sentinel models pull`` and ``report``).

Each of them first repairs a stale ``production.json`` from the alias history
(:func:`~activities.registry.aliases.repair_production_mirror`): the mirror never stays
behind the truth for longer than the next registry operation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.contracts import names
from activities.contracts.integrity import VerifyModelRequest, VerifyModelResult
from activities.contracts.registry import (
    AliasEvent,
    DownloadLink,
    DownloadLinksRequest,
    DownloadLinksResult,
    ListVersionsRequest,
    ListVersionsResult,
    PromoteVersionRequest,
    PromoteVersionResult,
    PublishRequest,
    PublishResult,
    RollbackRequest,
    RollbackResult,
    ShowVersionRequest,
    ShowVersionResult,
    VersionSummary,
)
from activities.infra import metrics
from activities.infra.errors import IntegrityError, NotFoundError, translate_errors
from activities.infra.heartbeat import heartbeat_progress
from activities.infra.links import LinkSigner
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.registry import aliases, layout
from activities.registry.core import Registry
from activities.registry.evidence import EVIDENCE_DIR
from activities.registry.publish import Publisher
from activities.registry.tracking import mirror_state, track_publish
from activities.registry.verify import verify_model
from activities.tracking import Tracking

ProductionMoveHook = Callable[[str, AliasEvent], object]
"""Told ``(model, event)`` after each move of the production alias (the worker wires the
webhook's production events here); it must not raise or block."""


class RegistryActivities:
    """Registry activities bound to one store and the configured models bucket; ``tracking``
    (off by default) records publishes in MLflow and mirrors the registry into MLflow's.

    ``on_production_move``: called after publish, promote or rollback moved production, so
    every path that moves it is announced (``activities.notify.announce``).
    """

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        *,
        tracking: Tracking | None = None,
        on_production_move: ProductionMoveHook | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = Registry(store, settings.models_bucket, keyring(settings))
        self.publisher = Publisher(self.registry)
        self.signer = LinkSigner.from_settings(settings, store)
        self.tracking = tracking or Tracking(None)
        self.on_production_move = on_production_move

    def _moved(self, model: str, event: AliasEvent | None) -> None:
        if event is not None and self.on_production_move is not None:
            self.on_production_move(model, event)

    def _publish_event(self, model: str, request_id: str) -> AliasEvent | None:
        """The alias event a publish wrote (looked for among the newest few)."""
        for seq in sorted(self.registry.scan(model).history, reverse=True)[:8]:
            event = self.registry.read(layout.history_key(model, seq), AliasEvent)
            if event is not None and event.request_id == request_id:
                return event
        return None

    @activity.defn(name=names.PUBLISH)
    @translate_errors
    def publish(self, request: PublishRequest) -> PublishResult:
        """Register the run's candidate as a new version (exactly once per run)."""
        try:
            self.store.check_bucket(self.settings.models_bucket)
            aliases.repair_production_mirror(self.registry, request.model)
            result = self.publisher.publish(request, progress=heartbeat_progress())
        except Exception:
            metrics.PUBLISH_OUTCOMES.labels(request.model, "failed").inc()
            raise
        outcome = "promoted" if result.promoted else "registered"
        metrics.PUBLISH_OUTCOMES.labels(request.model, outcome).inc()
        track_publish(self.tracking, self.registry, request, result)
        if result.promoted and self.on_production_move is not None:
            request_id = f"publish:{request.workflow_id}:{request.run_id}"
            self._moved(request.model, self._publish_event(request.model, request_id))
        return result

    @activity.defn(name=names.LIST_VERSIONS)
    @translate_errors
    def list_versions(self, request: ListVersionsRequest) -> ListVersionsResult:
        """The newest versions of a model (only versions with metadata exist)."""
        scan = self.registry.scan(request.model)
        aliases.repair_production_mirror(self.registry, request.model, scan)
        production = self.registry.production_version(request.model, scan)
        newest = sorted(scan.versions, reverse=True)[: request.limit]
        summaries = []
        untrusted: dict[int, str] = {}
        for version in newest:
            try:
                meta = self.registry.metadata(request.model, version)
            except IntegrityError as exc:  # marked, never trusted (nor fatal to the listing)
                untrusted[version] = str(exc)
                continue
            summaries.append(
                VersionSummary(
                    version=version,
                    created_at=meta.created_at,
                    workflow_id=meta.workflow_id,
                    map50_95=meta.candidate.map50_95,
                    task=meta.task,
                    score=meta.gate.candidate_map50_95 if meta.gate.metric else None,
                    metric=meta.gate.metric,
                    gate_promote=meta.gate.promote,
                    gate_reason=meta.gate.reason,
                    parity_passed=meta.parity.passed,
                    production=version == production,
                    imported=meta.imported is not None,
                )
            )
        return ListVersionsResult(
            model=request.model,
            versions=summaries,
            production_version=production,
            latest_version=max(scan.versions, default=None),
            total=len(scan.versions),
            untrusted=untrusted,
        )

    def _resolve(self, model: str, version: int | None, alias: str) -> tuple[int, bool, bool]:
        """``(version, is production, is latest)``: ``version``, else where ``alias`` points.

        Repairs a stale ``production.json`` on the way, as every registry operation does.
        """
        scan = self.registry.scan(model)
        aliases.repair_production_mirror(self.registry, model, scan)
        production = self.registry.production_version(model, scan)
        latest = max(scan.versions, default=None)
        if version is None:
            version = production if alias == "production" else latest
            if version is None:
                raise NotFoundError(f"model {model!r} has no {alias} version")
        return version, version == production, version == latest

    @activity.defn(name=names.SHOW_VERSION)
    @translate_errors
    def show_version(self, request: ShowVersionRequest) -> ShowVersionResult:
        """The metadata of one version (by number, or the one an alias points to)."""
        version, production, latest = self._resolve(request.model, request.version, request.alias)
        meta = self.registry.metadata(request.model, version)
        return ShowVersionResult(
            metadata=meta,
            production=production,
            latest=latest,
            report_key=layout.artifact_key(request.model, version, "report.md"),
        )

    @activity.defn(name=names.DOWNLOAD_LINKS)
    @translate_errors
    def download_links(self, request: DownloadLinksRequest) -> DownloadLinksResult:
        """Time-limited GET links to a version's model file or report (with its pictures).

        Each link carries the sha256 that the version's ``metadata.json`` records, so the
        client verifies what it downloads; nothing here needs the client's S3 credentials.
        """
        version, production, _ = self._resolve(request.model, request.version, request.alias)
        meta = self.registry.metadata(request.model, version)
        if request.what == "report":
            wanted = [
                "report.md",
                *sorted(n for n in meta.artifacts if n.startswith(f"{EVIDENCE_DIR}/")),
            ]
        else:
            wanted = [request.what]
        expires = timedelta(seconds=request.expires_seconds)
        files = []
        for name in wanted:
            record = meta.artifacts.get(name)
            if record is None:
                raise NotFoundError(f"{request.model} v{version} has no {name}")
            url = self.signer.link(self.settings.models_bucket, record.key, expires)
            files.append(DownloadLink(name=name, url=url, sha256=record.sha256, size=record.size))
        return DownloadLinksResult(
            model=request.model,
            version=version,
            production=production,
            files=files,
            expires_at=datetime.now(UTC) + expires,
        )

    @activity.defn(name=names.VERIFY_MODEL)
    @translate_errors
    def verify_model(self, request: VerifyModelRequest) -> VerifyModelResult:
        """Every signature and every file of a model (or one version), failures collected."""
        return verify_model(self.registry, request, heartbeat_progress())

    @activity.defn(name=names.PROMOTE_VERSION)
    @translate_errors
    def promote_version(self, request: PromoteVersionRequest) -> PromoteVersionResult:
        """Point production at a given version (recorded in the alias history), only from the
        production version the caller saw (ProductionMovedError naming the current one)."""
        aliases.repair_production_mirror(self.registry, request.model)
        previous, event = aliases.promote(
            self.registry,
            request.model,
            request.version,
            reason=request.reason,
            request_id=request.request_id,
            at=request.requested_at,
            expect_current=aliases.expectation_of(request.expected_production),
        )
        self._mirror(request.model)
        self._moved(request.model, event)
        return PromoteVersionResult(
            model=request.model,
            version=request.version,
            previous_version=previous,
            changed=event is not None,
            event=event,
        )

    @activity.defn(name=names.ROLLBACK_PRODUCTION)
    @translate_errors
    def rollback_production(self, request: RollbackRequest) -> RollbackResult:
        """Move production one step back from the version the caller saw (recorded)."""
        aliases.repair_production_mirror(self.registry, request.model)
        event = aliases.rollback(
            self.registry,
            request.model,
            reason=request.reason,
            request_id=request.request_id,
            at=request.requested_at,
            expect_current=aliases.expectation_of(request.expected_production),
        )
        assert event.previous_version is not None
        self._mirror(request.model)
        self._moved(request.model, event)
        return RollbackResult(
            model=request.model,
            from_version=event.previous_version,
            to_version=event.version,
            event=event,
        )

    def _mirror(self, model: str) -> None:
        """MLflow's model registry follows ours (enqueued; nothing when tracking is off)."""
        self.tracking.mirror_registry(model, lambda: mirror_state(self.registry, model))
