"""What the Temporal UI and the client see of a run: activity summaries, the memo (one event
per stage, none per epoch), current details, and live epochs read from the training's
heartbeat while the workflow itself hears of none."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from activities.contracts import names
from activities.contracts.retrain import Progress
from activities.infra.settings import Settings
from tests.helpers.polling import eventually
from tests.workflows.harness import Harness
from workflows.client.api import SentinelClient
from workflows.client.live import RunSummary
from workflows.retrain_story import STORY_PATCH

pytestmark = pytest.mark.timeout(60)


async def _summaries(harness: Harness, handle: WorkflowHandle[Any, Any]) -> dict[str, str]:
    """Activity type -> the summary its (first) scheduling carried."""
    converter = harness.client.data_converter.payload_converter
    found: dict[str, str] = {}
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        name = event.activity_task_scheduled_event_attributes.activity_type.name
        summary = converter.from_payload(event.user_metadata.summary, str)
        found.setdefault(name, summary)
    return found


async def _count(handle: WorkflowHandle[Any, Any], kind: EventType.ValueType) -> int:
    return sum([1 async for event in handle.fetch_history_events() if event.event_type == kind])


async def test_completed_run_tells_its_story_in_summaries_memo_and_details(
    harness: Harness,
) -> None:
    request = harness.request()
    handle = await harness.start(request)
    result = await handle.result()

    summaries = await _summaries(harness, handle)
    assert set(summaries) == {
        names.ASSEMBLE_DATASET, names.TRAIN, names.EVALUATE, names.EXPORT, names.PUBLISH,
        names.NOTIFY,
    }  # fmt: skip
    hp = request.hyperparameters
    assert summaries[names.TRAIN].startswith(
        # The request names no base: the workers' SENTINEL_DEFAULT_BASE (or yolov8n.yaml) decides.
        f"train the workers' default base {hp.epochs} epochs imgsz {hp.imgsz} on "
        f"{request.dataset.dataset}@"
    )
    assert summaries[names.ASSEMBLE_DATASET] == (
        f"assemble {request.dataset.dataset} from {request.dataset.prefix} (yolo)"
    )
    assert summaries[names.PUBLISH].startswith(f"publish {request.model_name} (promote: ")
    assert summaries[names.NOTIFY] == f"notify: succeeded, v{result.version}"

    memo = await (await handle.describe()).memo()
    assert memo == {
        "stage": "succeeded", "epoch": hp.epochs, "epochs": hp.epochs,
        "version": result.version, "promoted": True,
    }  # fmt: skip
    # Two patch markers (the UI story, the per-class gate), one memo event per stage entered,
    # no signal: a history of stages.
    stages = ["assembling", "training", "evaluating", "exporting", "publishing", "notifying"]
    modified = EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED
    assert await _count(handle, modified) == len(stages) + 1  # + succeeded
    assert await _count(handle, EventType.EVENT_TYPE_MARKER_RECORDED) == 2
    assert await _count(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 0
    history = await handle.fetch_history()
    marker = next(e for e in history.events if e.HasField("marker_recorded_event_attributes"))
    assert STORY_PATCH.encode() in marker.marker_recorded_event_attributes.SerializeToString()

    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    assert "**stage** succeeded" in details and f"**version** v{result.version}" in details
    assert f"**epoch** {hp.epochs}/{hp.epochs}" in details and "mAP50-95 0.600" in details


async def test_live_epochs_come_from_the_heartbeat_without_any_history_event(
    harness: Harness,
) -> None:
    stubs = harness.stubs
    request = harness.request()
    release = stubs.hold(names.TRAIN)
    stubs.heartbeat_with(
        names.TRAIN,
        {
            "phase": "train",
            "summary": {
                "epoch": 3, "epochs": 5, "attempt": 2, "resumed_from_epoch": 2,
                "metrics": {"map50_95": 0.31, "map50": 0.52}, "seconds_per_epoch": 2.0,
            },
        },
    )  # fmt: skip
    handle = await harness.start(request)
    await stubs.started(names.TRAIN)
    sentinel = SentinelClient(
        harness.client,
        Settings(cpu_task_queue=harness.cpu, gpu_task_queue=harness.gpu),
    )

    async def live() -> Progress | None:
        progress = await sentinel.progress(request.model_name)
        return progress if progress.live else None

    shown = await eventually(live, timeout=15, message="no live progress from the heartbeat")
    assert (shown.stage, shown.epoch, shown.epochs) == ("training", 3, 5)
    assert (shown.attempt, shown.resumed_from_epoch) == (2, 2)
    assert shown.metrics == {"map50_95": 0.31, "map50": 0.52}
    assert shown.eta_seconds == pytest.approx(4.0)  # 2 epochs left at 2 s each
    assert (await harness.progress(handle)).epoch == 0  # the workflow itself heard nothing

    async def listed() -> RunSummary | None:
        runs = [r for r in await sentinel.list_runs(50) if r.run_id == handle.result_run_id]
        ok = runs and (runs[0].stage, runs[0].epoch) == ("training", 3)
        return runs[0] if ok else None

    run = await eventually(listed, timeout=15, message="retrain list never showed epoch 3")
    assert (run.status, run.epochs, run.version) == ("RUNNING", 5, None)
    release.set()
    await handle.result()
    assert await _count(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 0
