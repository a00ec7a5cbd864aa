"""The client API of the controller's schedule (mixed into SentinelClient): create or update
the model's ``retrain-check-{model}`` Temporal Schedule, trigger, pause and resume it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from activities.contracts.controller import ControllerConfig
from activities.contracts.retrain import RetrainRequest
from activities.infra.settings import Settings
from workflows.controller import RetrainCheckWorkflow, schedule_id_for


async def create_or_update_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the Schedule ``schedule_id``, or replace its definition in place (idempotent)."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)


class ControllerOps:
    """Controller-schedule operations of :class:`~workflows.client.api.SentinelClient`."""

    client: Client
    settings: Settings

    def with_queues(self, request: RetrainRequest) -> RetrainRequest:
        """``request`` routed to this deployment's task queues."""
        return request.model_copy(
            update={
                "cpu_task_queue": self.settings.cpu_task_queue,
                "gpu_task_queue": self.settings.gpu_task_queue,
            }
        )

    def _schedule(self, config: ControllerConfig, every: timedelta) -> Schedule:
        config = config.model_copy(update={"request": self.with_queues(config.request)})
        return Schedule(
            action=ScheduleActionStartWorkflow(
                RetrainCheckWorkflow.run,
                config,
                id=f"{schedule_id_for(config.request.model_name)}-run",
                task_queue=self.settings.cpu_task_queue,
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
            # A slow check never piles up behind itself.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )

    async def apply_controller(self, config: ControllerConfig, every: timedelta) -> str:
        """Create the model's check schedule, or update it in place (idempotent)."""
        schedule_id = schedule_id_for(config.request.model_name)
        await create_or_update_schedule(self.client, schedule_id, self._schedule(config, every))
        return schedule_id

    async def trigger_controller(self, model_name: str) -> None:
        """Run the check now (as the UI's "Trigger" button does)."""
        await self.client.get_schedule_handle(schedule_id_for(model_name)).trigger()

    async def pause_controller(self, model_name: str, note: str = "paused by sentinel") -> None:
        await self.client.get_schedule_handle(schedule_id_for(model_name)).pause(note=note)

    async def unpause_controller(self, model_name: str, note: str = "resumed by sentinel") -> None:
        await self.client.get_schedule_handle(schedule_id_for(model_name)).unpause(note=note)
