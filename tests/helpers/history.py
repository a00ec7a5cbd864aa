"""What Temporal itself records about a run's activities: the evidence tests judge faults by.

Two sources, both the server's, never the code under test:

* the workflow's **description** while it runs (:func:`pending`): which activity is running,
  in which attempt, on which worker (``last_worker_identity``, ``pid@host`` by default) and
  with which heartbeat details;
* the **history** once it ended (:func:`activities_in`): every activity scheduled, the
  attempt that ended it, why the attempt before it failed (``last_failure``: e.g. a heartbeat
  timeout after its worker was killed) and how it ended.

Plus :func:`serving`: whether a worker identity polls a task queue (a worker is ready).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState, TaskQueueType, TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHistory

_OUTCOMES = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("completed", "activity_task_completed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("failed", "activity_task_failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("timed_out", "activity_task_timed_out"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("canceled", "activity_task_canceled"),
}


@dataclass(frozen=True)
class Pending:
    """One activity in a running workflow's description."""

    name: str
    started: bool
    attempt: int
    worker: str
    heartbeat: dict[str, Any] | None
    last_failure: Failure | None


def pending(description: WorkflowExecutionDescription) -> list[Pending]:
    """The workflow's pending activities, as the server describes them."""
    found = []
    for info in description.raw_description.pending_activities:
        payloads = info.heartbeat_details.payloads
        found.append(
            Pending(
                name=info.activity_type.name,
                started=info.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
                attempt=info.attempt,
                worker=info.last_worker_identity,
                heartbeat=json.loads(payloads[0].data) if payloads else None,
                last_failure=info.last_failure if info.HasField("last_failure") else None,
            )
        )
    return found


@dataclass(frozen=True)
class ActivityRecord:
    """One scheduled activity as its workflow's history tells it."""

    name: str
    scheduled_id: int
    scheduled_at: float
    """Server time (seconds since the epoch) of the scheduling."""
    attempt: int = 0
    """Attempt that ended it (0: never started; attempts before it are not written)."""
    worker: str = ""
    last_failure: Failure | None = None
    """Why the attempt before ``attempt`` failed (None for a first attempt)."""
    outcome: str = "pending"
    closed_id: int | None = None
    closed_at: float | None = None
    failure: Failure | None = None

    @property
    def retried_after_heartbeat_timeout(self) -> bool:
        """The attempt before the last one went silent (its worker died) and was retried."""
        failure = self.last_failure
        return (
            self.attempt >= 2
            and failure is not None
            and failure.HasField("timeout_failure_info")
            and failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
        )

    @property
    def non_retryable_failure(self) -> bool:
        """It failed with an application error marked non-retryable."""
        return (
            self.failure is not None
            and self.failure.HasField("application_failure_info")
            and self.failure.application_failure_info.non_retryable
        )


def activities_in(history: WorkflowHistory) -> list[ActivityRecord]:
    """Every activity of the run, in the order they were scheduled."""
    records: dict[int, ActivityRecord] = {}
    for event in history.events:
        at = event.event_time.ToMicroseconds() / 1e6
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            records[event.event_id] = ActivityRecord(name, event.event_id, at)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            record = records[started.scheduled_event_id]
            records[record.scheduled_id] = replace(
                record,
                attempt=started.attempt,
                worker=started.identity,
                last_failure=started.last_failure if started.HasField("last_failure") else None,
            )
        elif event.event_type in _OUTCOMES:
            outcome, field = _OUTCOMES[event.event_type]
            attributes = getattr(event, f"{field}_event_attributes")
            record = records[attributes.scheduled_event_id]
            has_failure = "failure" in attributes.DESCRIPTOR.fields_by_name
            failure = attributes.failure if has_failure and attributes.HasField("failure") else None
            records[record.scheduled_id] = replace(
                record, outcome=outcome, closed_id=event.event_id, closed_at=at, failure=failure
            )
    return list(records.values())


def only(records: list[ActivityRecord], name: str) -> ActivityRecord:
    """The one activity ``name`` of a run (asserting there was exactly one)."""
    found = [record for record in records if record.name == name]
    assert len(found) == 1, f"{name} scheduled {len(found)} times: {found}"
    return found[0]


def event_ids(history: WorkflowHistory, event_type: EventType.ValueType) -> list[int]:
    """Ids of the history's events of ``event_type``, in order."""
    return [event.event_id for event in history.events if event.event_type == event_type]


async def serving(client: Client, task_queue: str, identity: str) -> bool:
    """Whether a worker with ``identity`` polls ``task_queue`` for activities."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return any(poller.identity == identity for poller in response.pollers)
