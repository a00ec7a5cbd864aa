"""What a recorded workflow history shows, read from its events: how the run ended, which
activities it scheduled (and how often one was attempted), the signals, updates, timers and
child workflows it met, the patches it took, and its result.

The recorder checks every outcome's history against these facts before writing it, and the
replay test checks them again on the stored files: a history is what its name says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory

PATCH_MARKER = "core_patch"
"""The marker the SDK records for ``workflow.patched`` / ``deprecate_patch``."""


@dataclass
class Facts:
    """The outline of one run, as its history records it."""

    workflow_type: str = ""
    ended: str = "running"  # completed, canceled, failed, terminated, timed_out
    activities: list[str] = field(default_factory=list)  # scheduled, in order
    attempts: dict[str, int] = field(default_factory=dict)  # activity -> highest attempt
    failed_activities: list[str] = field(default_factory=list)  # for good (retries spent)
    signals: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)  # accepted, in order
    cancel_requested: bool = False
    timers_fired: int = 0
    children: list[str] = field(default_factory=list)  # child workflow types started
    children_refused: int = 0  # child starts that failed (already running)
    workflow_task_timeouts: int = 0  # a worker that vanished holding the run
    patches: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    failure_types: list[str] = field(default_factory=list)  # outermost first


def _failure_types(failure: Failure) -> list[str]:
    types = []
    current: Failure | None = failure
    while current is not None and current.ByteSize():
        if current.HasField("application_failure_info"):
            types.append(current.application_failure_info.type)
        current = current.cause if current.HasField("cause") else None
    return types


def facts_of(history: WorkflowHistory) -> Facts:
    """The :class:`Facts` of ``history``."""
    facts = Facts()
    scheduled: dict[int, str] = {}
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            facts.workflow_type = attrs.workflow_type.name
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
            facts.activities.append(name)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            name = scheduled[started.scheduled_event_id]
            facts.attempts[name] = max(facts.attempts.get(name, 0), started.attempt)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            facts.failed_activities.append(scheduled[failed.scheduled_event_id])
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            facts.signals.append(event.workflow_execution_signaled_event_attributes.signal_name)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = event.workflow_execution_update_accepted_event_attributes
            facts.updates.append(accepted.accepted_request.input.name)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            facts.cancel_requested = True
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            facts.timers_fired += 1
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            attrs_child = event.start_child_workflow_execution_initiated_event_attributes
            facts.children.append(attrs_child.workflow_type.name)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            facts.children_refused += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            facts.workflow_task_timeouts += 1
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == PATCH_MARKER:
                data = json.loads(marker.details["patch-data"].payloads[0].data)
                facts.patches.append(data["id"])
        else:
            _closing(facts, event)
    return facts


def _closing(facts: Facts, event: Any) -> None:
    """Record how the run ended, when ``event`` is its closing event."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        facts.ended = "completed"
        payloads = event.workflow_execution_completed_event_attributes.result.payloads
        facts.result = json.loads(payloads[0].data) if payloads else None
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        facts.ended = "failed"
        facts.failure_types = _failure_types(
            event.workflow_execution_failed_event_attributes.failure
        )
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        facts.ended = "canceled"
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        facts.ended = "terminated"
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        facts.ended = "timed_out"
