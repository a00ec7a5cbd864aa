"""Races: two starts of one model at the same instant, and a cancel racing with publish
(driven by the publish activity appearing in the workflow's description, judged against the
documented rule from the history)."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from activities.contracts import names
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.faults.audit import audit
from tests.faults.conftest import TABLE, TRIALS, Row
from tests.faults.trials import MAX_DRAWS, fault_request, judge, redraw
from tests.helpers.history import activities_in, event_ids, only, pending
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from workflows.client import RetrainAlreadyRunningError, RetrainNotRunningError, SentinelClient

pytestmark = pytest.mark.timeout(300 + 600 * TRIALS)


# ---------------------------------------------------------------------- races
async def test_two_starts_for_the_same_model_at_the_same_instant(
    client: Client, queues: Queues, prefix: str
) -> None:
    """No worker needed: the start itself is the race."""
    sentinel = sentinel_for(client, queues)
    kind = "two starts at the same instant"
    for _ in range(TRIALS):
        started = time.monotonic()
        request = fault_request(prefix, queues)
        outcomes = await asyncio.gather(
            sentinel.start_retrain(request), sentinel.start_retrain(request), return_exceptions=True
        )
        ids = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if isinstance(o, RetrainAlreadyRunningError)]
        row = TABLE.setdefault(kind, Row())
        row.trials += 1
        row.landed += 1  # both starts were in flight together: the race is the fault
        row.completed += len(ids) == 1 and len(refused) == 1
        row.duplicates += len(ids) > 1
        row.seconds += time.monotonic() - started
        await sentinel.handle(request.model_name).terminate("fault test done")
        assert len(ids) == 1 and len(refused) == 1, outcomes
        assert ids[0] in str(refused[0])


async def test_cancel_racing_with_publish(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
) -> None:
    """Cancel as soon as the publish activity is pending: the documented rule, exactly.

    docs/architecture.md, "Publish is the point of no return": a cancel recorded before the
    publish activity was scheduled ends the run CANCELED with nothing written under the
    model; one recorded after ends it COMPLETED with the version, its reason saying so. A
    cancel of the run once it ended is refused, and changes nothing.
    """
    sentinel = sentinel_for(client, queues)
    kind = "cancel racing with publish"
    failures: list[str] = []
    async with run_workers():
        for _ in range(TRIALS):
            for draw in range(1, MAX_DRAWS + 1):
                outcome = await cancel_trial(sentinel, store, settings, prefix, queues, kind, draw)
                if outcome is not None:
                    failures += outcome
                    break
    assert not failures, failures


async def cancel_trial(
    sentinel: SentinelClient,
    store: ObjectStore,
    settings: Settings,
    prefix: str,
    queues: Queues,
    kind: str,
    draw: int,
) -> list[str] | None:
    """One draw; None when the cancel missed the publish (the caller draws again)."""
    started = time.monotonic()
    request = fault_request(prefix, queues)
    model = request.model_name
    await sentinel.start_retrain(request)
    handle = sentinel.handle(model)

    async def publishing() -> bool:
        return any(item.name == names.PUBLISH for item in pending(await handle.describe()))

    await eventually(publishing, timeout=300, interval=0.02, message="publish pending")
    await sentinel.cancel(model)
    result = None
    try:
        result = await asyncio.wait_for(sentinel.result(model), 120)
    except WorkflowFailureError as exc:
        assert isinstance(exc.cause, CancelledError), exc.cause
    history = await handle.fetch_history()
    publish = only(activities_in(history), names.PUBLISH)
    cancel_at = event_ids(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)[0]
    proven = publish.scheduled_id < cancel_at < (publish.closed_id or 0)
    if not proven and draw < MAX_DRAWS:
        redraw(kind, f"{model}: the cancel came after publish ended")
        return None
    status = await sentinel.status(model)
    if publish.scheduled_id < cancel_at:  # past the point of no return: COMPLETED, said so
        found, problems = judge(store, settings, kind, started, model, result, proven=proven)
        if status != WorkflowExecutionStatus.COMPLETED or result is None:
            return [*problems, f"{kind}: {status} after a cancel during publish"]
        if "a cancel arrived" not in result.reason:
            problems.append(f"{kind}: the reason does not say a cancel arrived: {result.reason}")
        problems += await cancel_after_completion(sentinel, store, settings, model, kind)
        TABLE[kind].notes.append(
            f"COMPLETED, versions {found.versions}, production v{found.production}"
        )
        return problems
    # Never reached while the cancel waits for publish to be pending; kept for completeness.
    found = audit(store, settings, model, kept_runs=frozenset({handle.id}))
    if status != WorkflowExecutionStatus.CANCELED or found.versions or found.orphans:
        return [f"{kind}: cancel before publish gave {status}, {found}"]
    return []


async def cancel_after_completion(
    sentinel: SentinelClient, store: ObjectStore, settings: Settings, model: str, kind: str
) -> list[str]:
    """A cancel of the ended run: refused with the status, the store and history unchanged."""
    handle = sentinel.handle(model)
    before = (audit(store, settings, model), len((await handle.fetch_history()).events))
    try:
        await sentinel.cancel(model)
    except RetrainNotRunningError as exc:
        if "already ended COMPLETED" not in str(exc):
            return [f"{kind}: unclear answer to a late cancel: {exc}"]
    else:
        return [f"{kind}: a cancel after completion was accepted silently"]
    after = (audit(store, settings, model), len((await handle.fetch_history()).events))
    if after != before or await sentinel.status(model) != WorkflowExecutionStatus.COMPLETED:
        return [f"{kind}: a late cancel changed something: {before} -> {after}"]
    return []
