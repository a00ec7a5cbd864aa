"""GarbageCollectionWorkflow on stubs, started as the client API and the CLI start it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import ScheduleActionStartWorkflow, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError

from activities.contracts import names
from activities.contracts.retention import GcRequest
from activities.infra.settings import Settings
from tests.helpers import factories
from tests.helpers.polling import eventually
from tests.workflows.harness import Harness
from workflows.client.api import SentinelClient
from workflows.client.cli import build_parser

pytestmark = pytest.mark.timeout(60)


def _sentinel(harness: Harness) -> SentinelClient:
    return SentinelClient(harness.client, Settings(cpu_task_queue=harness.cpu))


async def test_gc_runs_the_activity_once_and_returns_its_result(harness: Harness) -> None:
    result = await _sentinel(harness).collect_garbage(dry_run=True, grace=timedelta(minutes=90))
    assert harness.stubs.only_request(names.COLLECT_GARBAGE) == GcRequest(
        dry_run=True, grace_hours=1.5
    )
    assert result == factories.gc_result(dry_run=True)
    (call,) = harness.stubs.calls_of(names.COLLECT_GARBAGE)
    assert call.task_queue == harness.cpu


async def test_a_final_error_fails_the_sweep_at_once(harness: Harness) -> None:
    harness.stubs.fail(names.COLLECT_GARBAGE, "bucket missing", kind="ConfigurationError")
    with pytest.raises(WorkflowFailureError) as info:
        await _sentinel(harness).collect_garbage()
    cause = info.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert (cause.cause.type, cause.cause.message) == ("ConfigurationError", "bucket missing")
    assert len(harness.stubs.calls_of(names.COLLECT_GARBAGE)) == 1  # non-retryable: once


def test_cli_verbs_parse() -> None:
    args = build_parser().parse_args(["registry", "gc", "--dry-run", "--grace", "12h"])
    assert (args.group, args.verb, args.dry_run, args.grace) == (
        "registry",
        "gc",
        True,
        timedelta(hours=12),
    )
    args = build_parser().parse_args(["registry", "gc-schedule", "--every", "6h"])
    assert (args.every, args.grace, args.delete) == (timedelta(hours=6), None, False)


async def test_the_gc_schedule_is_created_updated_and_deleted(harness: Harness) -> None:
    sentinel = _sentinel(harness)
    schedule_id = await sentinel.schedule_gc(timedelta(days=1))
    handle = harness.client.get_schedule_handle(schedule_id)
    try:
        await sentinel.schedule_gc(timedelta(hours=6), grace=timedelta(hours=2))  # in place
        described = await handle.describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (names.GC_WORKFLOW, harness.cpu)
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(hours=6)]
        await handle.trigger()
        await eventually(
            lambda: harness.stubs.calls_of(names.COLLECT_GARBAGE) or None,
            timeout=20,
            message="scheduled sweep",
        )
        assert harness.stubs.only_request(names.COLLECT_GARBAGE) == GcRequest(grace_hours=2.0)
    finally:
        await sentinel.unschedule_gc()
    with pytest.raises(RPCError, match="not found"):
        await handle.describe()
