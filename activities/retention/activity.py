"""The ``collect_garbage`` activity (CPU queue): one sweep of the runs and models buckets."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.contracts import names
from activities.contracts.retention import GcRequest, GcResult
from activities.infra.errors import ConfigurationError, translate_errors
from activities.infra.heartbeat import heartbeat_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.infra.workflow_runs import WorkflowRuns
from activities.retention.registry import published_sha256s, sweep_models
from activities.retention.runs import sweep_runs
from activities.retention.sweep import Policy, Sweep

log = logging.getLogger(__name__)


class RetentionActivities:
    """Retention bound to a store, the settings (the policy) and Temporal (who is running)."""

    def __init__(self, settings: Settings, store: ObjectStore, runs: WorkflowRuns | None) -> None:
        self.settings = settings
        self.store = store
        self.runs = runs

    def policy(self, request: GcRequest) -> Policy:
        """The policy of the settings, with the request's grace period if it names one."""
        settings = self.settings
        grace = request.grace_hours
        return Policy(
            now=datetime.now(UTC),
            grace=timedelta(hours=settings.retention_grace_hours if grace is None else grace),
            export_age=timedelta(days=settings.retention_export_days),
            failed_checkpoints=settings.retention_failed_checkpoints,
        )

    @activity.defn(name=names.COLLECT_GARBAGE)
    @translate_errors
    def collect_garbage(self, request: GcRequest) -> GcResult:
        """Delete (or, in a dry run, list) what finished runs and dead publishes left behind;
        never a version that exists, never an object of a running workflow."""
        if self.runs is None:
            raise ConfigurationError(
                "collect_garbage needs the worker's Temporal client (workers.factory passes it)"
            )
        settings, store = self.settings, self.store
        for bucket in (settings.runs_bucket, settings.models_bucket):
            store.check_bucket(bucket)
        policy = self.policy(request)
        progress = heartbeat_progress("gc")
        sweep = Sweep(store, request.dry_run)
        published = functools.cache(lambda: published_sha256s(store, settings.models_bucket))
        sweep_runs(sweep, store, settings.runs_bucket, self.runs, policy, published, progress)
        sweep_models(sweep, store, settings.models_bucket, self.runs, policy, progress)
        result = sweep.result()
        log.info(
            "gc%s: %d objects (%s), %d runs and %d models seen, %d running left alone",
            " (dry run)" if request.dry_run else "", result.objects,
            ", ".join(f"{k}={v.objects}" for k, v in result.categories.items() if v.objects),
            result.runs_seen, result.models_seen, len(result.skipped_running),
        )  # fmt: skip
        return result
