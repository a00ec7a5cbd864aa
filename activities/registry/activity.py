"""Temporal activities of the model registry (CPU queue): publish, list, show, promote, rollback."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.registry import (
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
from activities.infra.errors import NotFoundError, translate_errors
from activities.infra.heartbeat import heartbeat_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import aliases, layout
from activities.registry.core import Registry
from activities.registry.publish import Publisher
from activities.registry.tracking import mirror_state, track_publish
from activities.tracking import Tracking


class RegistryActivities:
    """Registry activities bound to one store and the configured models bucket; ``tracking``
    (off by default) records publishes in MLflow and mirrors the registry into MLflow's."""

    def __init__(
        self, settings: Settings, store: ObjectStore, *, tracking: Tracking | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = Registry(store, settings.models_bucket)
        self.publisher = Publisher(self.registry)
        self.tracking = tracking or Tracking(None)

    @activity.defn(name=names.PUBLISH)
    @translate_errors
    def publish(self, request: PublishRequest) -> PublishResult:
        """Register the run's candidate as a new version (exactly once per run)."""
        try:
            self.store.check_bucket(self.settings.models_bucket)
            result = self.publisher.publish(request, progress=heartbeat_progress())
        except Exception:
            metrics.PUBLISH_OUTCOMES.labels(request.model, "failed").inc()
            raise
        outcome = "promoted" if result.promoted else "registered"
        metrics.PUBLISH_OUTCOMES.labels(request.model, outcome).inc()
        track_publish(self.tracking, self.registry, request, result)
        return result

    @activity.defn(name=names.LIST_VERSIONS)
    @translate_errors
    def list_versions(self, request: ListVersionsRequest) -> ListVersionsResult:
        """The newest versions of a model (only versions with metadata exist)."""
        scan = self.registry.scan(request.model)
        production = self.registry.production_version(request.model, scan)
        newest = sorted(scan.versions, reverse=True)[: request.limit]
        summaries = []
        for version in newest:
            meta = self.registry.metadata(request.model, version)
            summaries.append(
                VersionSummary(
                    version=version,
                    created_at=meta.created_at,
                    workflow_id=meta.workflow_id,
                    map50_95=meta.candidate.map50_95,
                    gate_promote=meta.gate.promote,
                    gate_reason=meta.gate.reason,
                    parity_passed=meta.parity.passed,
                    production=version == production,
                )
            )
        return ListVersionsResult(
            model=request.model,
            versions=summaries,
            production_version=production,
            latest_version=max(scan.versions, default=None),
            total=len(scan.versions),
        )

    @activity.defn(name=names.SHOW_VERSION)
    @translate_errors
    def show_version(self, request: ShowVersionRequest) -> ShowVersionResult:
        """The metadata of one version (by number, or the one an alias points to)."""
        scan = self.registry.scan(request.model)
        production = self.registry.production_version(request.model, scan)
        latest = max(scan.versions, default=None)
        version = request.version
        if version is None:
            version = production if request.alias == "production" else latest
            if version is None:
                raise NotFoundError(f"model {request.model!r} has no {request.alias} version")
        meta = self.registry.metadata(request.model, version)
        return ShowVersionResult(
            metadata=meta,
            production=version == production,
            latest=version == latest,
            report_key=layout.artifact_key(request.model, version, "report.md"),
        )

    @activity.defn(name=names.PROMOTE_VERSION)
    @translate_errors
    def promote_version(self, request: PromoteVersionRequest) -> PromoteVersionResult:
        """Point production at a given version (recorded in the alias history)."""
        previous, event = aliases.promote(
            self.registry,
            request.model,
            request.version,
            reason=request.reason,
            request_id=request.request_id,
            at=request.requested_at,
        )
        self._mirror(request.model)
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
        """Move production back to the version its current one replaced (recorded)."""
        event = aliases.rollback(
            self.registry,
            request.model,
            reason=request.reason,
            request_id=request.request_id,
            at=request.requested_at,
        )
        assert event.previous_version is not None
        self._mirror(request.model)
        return RollbackResult(
            model=request.model,
            from_version=event.previous_version,
            to_version=event.version,
            event=event,
        )

    def _mirror(self, model: str) -> None:
        """MLflow's model registry follows ours (enqueued; nothing when tracking is off)."""
        self.tracking.mirror_registry(model, lambda: mirror_state(self.registry, model))
