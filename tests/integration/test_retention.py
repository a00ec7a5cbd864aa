"""Retention (``sentinel registry gc``) on the real Temporal server and the real S3 server.

The sweep runs as the product runs it: GarbageCollectionWorkflow on a CPU worker built by
``workers.factory``, whose ``collect_garbage`` activity asks Temporal which workflows run.
Each test uses buckets of its own, so the sweep never sees another test's objects. Runs are
stand-in workflows in the states that matter (running, completed, failed); registry versions
are published with the real protocol (stand-in weights: the registry never looks inside).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.contracts.registry import PublishRequest
from activities.contracts.retention import GcResult
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import layout, load_registry_model
from activities.registry.core import Registry
from activities.registry.publish import Publisher
from tests.helpers.factories import AT, SNAPSHOT, evaluation, export_result, gate, weights
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from tests.helpers.tiny_onnx import onnx_bytes
from workflows.gate import apply_parity


@workflow.defn(name="GcHeldRun", sandboxed=False)
class HeldRun:
    """A run that is still going (until released)."""

    def __init__(self) -> None:
        self._released = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._released)
        return "released"

    @workflow.signal
    def release(self) -> None:
        self._released = True


@workflow.defn(name="GcEndedRun", sandboxed=False)
class EndedRun:
    """A run that ends at once: completed, or failed (``fail``)."""

    @workflow.run
    async def run(self, fail: bool) -> str:
        if fail:
            raise ApplicationError("training diverged", non_retryable=True)
        return "done"


@asynccontextmanager
async def stand_in_runs(client: Client, queue: str) -> AsyncIterator[None]:
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[HeldRun, EndedRun],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        yield


@pytest.fixture
def buckets(store: ObjectStore) -> tuple[str, str]:
    """A runs bucket and a models bucket of the test's own."""
    tag = uuid.uuid4().hex[:8]
    runs, models = f"gc-runs-{tag}", f"gc-models-{tag}"
    for bucket in (runs, models):
        store.ensure_bucket(bucket)
    return runs, models


def _put(store: ObjectStore, bucket: str, folder: str, names: list[str]) -> list[str]:
    keys = [f"{folder}{name}" for name in names]
    for key in keys:
        store.put_bytes(bucket, key, f"bytes of {key}".encode())
    return keys


def _run_objects(store: ObjectStore, bucket: str, workflow_id: str) -> list[str]:
    return _put(
        store,
        bucket,
        f"runs/{workflow_id}/",
        [
            "checkpoints/epoch-0001.pt",
            "checkpoints/epoch-0002.pt",
            "checkpoints/epoch-0003.pt",
            "checkpoints/epoch-0002.pt.sig.json",  # signed sidecars: they go with their file
            "checkpoints/epoch-0003.pt.sig.json",
            "control/stop_early",
            "export/model-0123456789abcdef.onnx",
            "best.pt",
        ],
    )


def _publish_v1(store: ObjectStore, runs: str, models: str, model: str) -> None:
    """Version 1 of ``model`` through the real publish protocol."""
    prefix = f"runs/retrain-{model}/"
    pt = store.put_bytes(runs, f"{prefix}best.pt", b"weights v1")
    onnx = store.put_bytes(runs, f"{prefix}export/model-v1.onnx", onnx_bytes(b"onnx v1"))
    exported = export_result(
        weights(onnx.key, onnx.sha256 or "", runs), weights(pt.key, pt.sha256 or "", runs)
    )
    request = PublishRequest(
        model=model,
        workflow_id=f"retrain-{model}",
        run_id="run-v1",
        created_at=AT,
        candidate=weights(pt.key, pt.sha256 or "", runs),
        export=exported,
        evaluation=evaluation(0.6).model_copy(update={"model": model}),
        gate=apply_parity(gate(True), exported.parity),
        snapshot=SNAPSHOT,
        epochs=3,
    )
    assert Publisher(Registry(store, models), settle_seconds=0).publish(request).version == 1
    store.delete_prefix(runs, prefix)  # only the registry's copy matters here


def _dead_publish(
    store: ObjectStore, models: str, model: str, version: int, owner: tuple[str, str]
) -> list[str]:
    """What a publish leaves when its run dies between claim and metadata."""
    workflow_id, run_id = owner
    claim = layout.claim_key(model, version)
    index = layout.publish_key(model, workflow_id, run_id)
    store.put_bytes(
        models, claim, json.dumps({"workflow_id": workflow_id, "run_id": run_id}).encode()
    )
    store.put_bytes(models, index, json.dumps({"version": version}).encode())
    data = layout.artifact_key(model, version, "model.pt")
    store.put_bytes(models, data, b"half a version")
    return [claim, index, data]


def _keys(store: ObjectStore, bucket: str) -> set[str]:
    return {info.key for info in store.list(bucket)}


async def _ended(handle: WorkflowHandle) -> None:
    with suppress(WorkflowFailureError):
        await handle.result()


async def test_gc_sweeps_finished_runs_and_dead_publishes_but_never_a_version_or_a_running_run(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    buckets: tuple[str, str],
    tmp_path: Path,
) -> None:
    runs, models = buckets
    tag, model = uuid.uuid4().hex[:8], f"gc-{uuid.uuid4().hex[:8]}"
    running_id, done_id, failed_id = (f"gc-{kind}-{tag}" for kind in ("running", "done", "failed"))
    stand_in = f"{queues.cpu}-runs"
    sentinel = sentinel_for(client, queues)
    _publish_v1(store, runs, models, model)
    running_keys = _run_objects(store, runs, running_id)
    done_keys, failed_keys = (
        _run_objects(store, runs, done_id),
        _run_objects(store, runs, failed_id),
    )
    async with stand_in_runs(client, stand_in):
        held = await client.start_workflow(
            HeldRun.run, id=running_id, task_queue=stand_in, execution_timeout=timedelta(minutes=5)
        )
        done = await client.start_workflow(EndedRun.run, False, id=done_id, task_queue=stand_in)
        failed = await client.start_workflow(EndedRun.run, True, id=failed_id, task_queue=stand_in)
        await asyncio.gather(_ended(done), _ended(failed))

        def dead() -> tuple[str, str]:  # a run Temporal does not know (or no longer)
            return f"retrain-gone-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())

        v2 = _dead_publish(store, models, model, 2, dead())
        held_run = (await held.describe()).run_id
        v3 = _dead_publish(store, models, model, 3, (running_id, held_run))
        v4 = _dead_publish(store, models, model, 4, dead())
        before = {runs: _keys(store, runs), models: _keys(store, models)}
        overrides = {"runs_bucket": runs, "models_bucket": models, "retention_export_days": 0}
        async with run_workers(kinds=("cpu",), **overrides):
            dry: GcResult = await sentinel.collect_garbage(dry_run=True, grace=timedelta(0))
            assert {runs: _keys(store, runs), models: _keys(store, models)} == before
            swept: GcResult = await sentinel.collect_garbage(grace=timedelta(0))
        await held.signal(HeldRun.release)
        await held.result()

    counts = {name: c.objects for name, c in swept.categories.items()}
    assert counts == {
        # All of the completed run, all but the newest of the failed one; sidecars with them.
        "checkpoints": (3 + 2) + (2 + 1),
        "controls": 2,
        "exports": 2,
        "partial_versions": 2,  # v2 and v4 (v3's run is still publishing)
        "orphan_claims": 1,  # v2; v4 is the highest claim: kept as the watermark
        "publish_indexes": 2,
    }
    assert {n: c.objects for n, c in dry.categories.items()} == counts and dry.dry_run
    assert running_id in swept.skipped_running and swept.watermarks == [f"{model} v4"]
    left = _keys(store, runs)
    assert set(running_keys) <= left  # a running workflow's objects, every one
    assert {k for k in done_keys if k in left} == {f"runs/{done_id}/best.pt"}
    assert {k for k in failed_keys if k in left} == {
        f"runs/{failed_id}/checkpoints/epoch-0003.pt",
        f"runs/{failed_id}/checkpoints/epoch-0003.pt.sig.json",
        f"runs/{failed_id}/best.pt",
    }
    left = _keys(store, models)
    assert set(v3) <= left and layout.claim_key(model, 4) in left
    assert not ({*v2, *v4} - {layout.claim_key(model, 4)}) & left
    version_one = {k for k in before[models] if k.startswith(layout.version_prefix(model, 1))}
    assert len(version_one) == 5 and version_one <= left  # the version that exists, whole
    load_registry_model(  # still loads, verified against its metadata
        store, settings.model_copy(update={"models_bucket": models}), model, 1, tmp_path / "v1.pt"
    )
