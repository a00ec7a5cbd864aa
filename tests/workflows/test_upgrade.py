"""A deploy of changed workflow code while retrains are in flight ("Upgrading workflow code"
in docs/architecture.md): the real workflows on the real dev server, stub activities.

Three runs, each with its own activity queues and stubs, share one workflow task queue. The
worker serving it runs today's RetrainWorkflow; two runs start, one is held while publishing
(past the point where the next release adds a step) and one while training (before it).
That worker is stopped and a worker with the next release takes over: the new step is
guarded by ``workflow.patched``. Every run completes; only the run that had not reached the
step yet, and a run started after the deploy, take it. The same change without the guard
cannot replay the held run's history, and a history that took the new step cannot replay on
the old code (a release that adds a patch is fixed forward, never rolled back).
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

from activities.contracts import names
from activities.contracts.retrain import RetrainResult
from tests.helpers.factories import stub_retrain_request
from tests.helpers.upgraded_workflows import (
    AUDIT_ACTIVITY,
    AUDIT_PATCH,
    AuditRequest,
    AuditResult,
    RetrainWithAudit,
    RetrainWithUnguardedAudit,
)
from tests.histories.facts import facts_of
from tests.workflows.stubs import PIPELINE, Stubs
from workflows import patches as live_patches
from workflows.retrain import RetrainWorkflow, workflow_id_for

pytestmark = pytest.mark.timeout(90)


@dataclass
class Lane:
    """One run's activity queues, with stubs of its own (holds are per lane)."""

    cpu: str
    gpu: str
    stubs: Stubs = field(default_factory=Stubs)
    audited: list[str] = field(default_factory=list)

    def workers(self, client: Client) -> list[Worker]:
        audited = self.audited

        @activity.defn(name=AUDIT_ACTIVITY)
        async def audit(request: AuditRequest) -> AuditResult:
            audited.append(request.workflow_id)
            return AuditResult(passed=True)

        return [
            Worker(client, task_queue=self.cpu, activities=[*self.stubs.cpu_activities(), audit]),
            Worker(client, task_queue=self.gpu, activities=self.stubs.gpu_activities()),
        ]

    async def start(self, client: Client, workflow_queue: str) -> WorkflowHandle[Any, Any]:
        request = stub_retrain_request(self.cpu, self.gpu)
        return await client.start_workflow(
            RetrainWorkflow.run,
            request,
            id=workflow_id_for(request.model_name),
            task_queue=workflow_queue,
            execution_timeout=timedelta(minutes=2),
        )


async def _replays(workflow: type, handle: WorkflowHandle[Any, Any]) -> Exception | None:
    """None when ``handle``'s history replays on ``workflow``, else the replay failure."""
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    history = await handle.fetch_history()
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


async def test_a_deploy_of_guarded_new_code_keeps_runs_in_flight_and_new_runs_take_the_new_step(
    temporal_client: Client,
) -> None:
    client = temporal_client
    tag = uuid.uuid4().hex[:8]
    workflow_queue = f"upgrade-wf-{tag}"
    past, early, fresh = (Lane(f"upgrade-cpu-{n}-{tag}", f"upgrade-gpu-{n}-{tag}") for n in "abc")
    release_publish = past.stubs.hold(names.PUBLISH)
    release_training = early.stubs.hold(names.TRAIN)
    async with AsyncExitStack() as activity_workers:
        for lane in (past, early, fresh):
            for worker in lane.workers(client):
                await activity_workers.enter_async_context(worker)

        # Today's code. Its cached runs move to the next worker 1 s after it is gone (instead
        # of the default 10 s): only the wait changes, the runs are replayed from history.
        today = Worker(
            client,
            task_queue=workflow_queue,
            workflows=[RetrainWorkflow],
            sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        )
        serving = asyncio.create_task(today.run())
        publishing = await past.start(client, workflow_queue)
        training = await early.start(client, workflow_queue)
        await past.stubs.started(names.PUBLISH)
        await early.stubs.started(names.TRAIN)
        await today.shutdown()
        await serving

        async with Worker(client, task_queue=workflow_queue, workflows=[RetrainWithAudit]):
            release_publish.set()
            release_training.set()
            results: list[RetrainResult] = [await publishing.result(), await training.result()]
            started_after = await fresh.start(client, workflow_queue)
            results.append(await started_after.result())

    handles = (publishing, training, started_after)
    for lane, handle, result in zip((past, early, fresh), handles, results, strict=True):
        assert lane.stubs.order() == PIPELINE, handle.id  # every stage once, in order
        assert (result.version, result.promoted, result.production_version) == (1, True, 1)
    # Only runs that had not passed the change point take the new step (and record the patch).
    assert (past.audited, early.audited, fresh.audited) == ([], [training.id], [started_after.id])
    # Every run also takes the guards already in the code (they started on today's code).
    # (All but the approval notification: these runs never wait for approval.)
    current = [p for p in live_patches.PATCHED if p != live_patches.APPROVAL_NOTICE]
    patches = [facts_of(await handle.fetch_history()).patches for handle in handles]
    assert patches == [current, [*current, AUDIT_PATCH], [*current, AUDIT_PATCH]]

    assert await _replays(RetrainWorkflow, publishing) is None
    assert await _replays(RetrainWithAudit, publishing) is None
    assert await _replays(RetrainWithAudit, started_after) is None
    unguarded = await _replays(RetrainWithUnguardedAudit, publishing)
    assert isinstance(unguarded, NondeterminismError), unguarded
    back_to_today = await _replays(RetrainWorkflow, started_after)
    assert isinstance(back_to_today, NondeterminismError), back_to_today
