"""The client API of retention (mixed into SentinelClient): sweep what finished runs and dead
publishes left behind, now or on the ``sentinel-gc`` Temporal Schedule."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from activities.contracts.retention import GcRequest, GcResult
from activities.infra.settings import Settings
from workflows.client.api_controller import create_or_update_schedule
from workflows.retention import GC_SCHEDULE_ID, GarbageCollectionWorkflow


class RetentionOps:
    """Retention operations of :class:`~workflows.client.api.SentinelClient`."""

    client: Client
    settings: Settings

    @staticmethod
    def _gc_request(dry_run: bool, grace: timedelta | None) -> GcRequest:
        hours = None if grace is None else grace.total_seconds() / 3600
        return GcRequest(dry_run=dry_run, grace_hours=hours)

    async def collect_garbage(
        self, *, dry_run: bool = False, grace: timedelta | None = None
    ) -> GcResult:
        """Sweep what finished runs and dead publishes left behind (``dry_run``: only list it).

        Never deletes a version that exists or an object of a running workflow; ``grace``
        overrides the workers' ``SENTINEL_RETENTION_GRACE_HOURS`` for this sweep.
        """
        return await self.client.execute_workflow(
            GarbageCollectionWorkflow.run,
            self._gc_request(dry_run, grace),
            id=f"gc-{uuid.uuid4().hex[:12]}",
            task_queue=self.settings.cpu_task_queue,
        )

    async def schedule_gc(self, every: timedelta, grace: timedelta | None = None) -> str:
        """Create the sweep's Schedule (``sentinel-gc``) or update it in place (idempotent)."""
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                GarbageCollectionWorkflow.run,
                self._gc_request(False, grace),
                id=f"{GC_SCHEDULE_ID}-run",
                task_queue=self.settings.cpu_task_queue,
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
            # A sweep that outlasts its interval never overlaps the next one.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        await create_or_update_schedule(self.client, GC_SCHEDULE_ID, schedule)
        return GC_SCHEDULE_ID

    async def unschedule_gc(self) -> None:
        """Delete the sweep's Schedule."""
        await self.client.get_schedule_handle(GC_SCHEDULE_ID).delete()
