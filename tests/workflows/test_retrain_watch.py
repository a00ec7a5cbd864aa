"""What operators and people following a run see of it, on stub activities: the CPU workers'
watch over running retrains (operator metrics), and tracking trouble in the progress query.

An approval wait runs no activity, so only the workflow knows about it: the watch reads it
through the ``progress`` query and exports how long each approval has waited, which the
"approval waiting longer than a day" alert reads.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from activities.contracts import names
from activities.contracts.retrain import ApprovalDecision, ApprovalPolicy, TrainingProgress
from tests.helpers.polling import eventually
from tests.workflows.harness import Harness
from workers.telemetry import RetrainWatch


def _waiting(model: str) -> float | None:
    return REGISTRY.get_sample_value("sentinel_approval_waiting_seconds", {"model": model})


async def test_the_watch_exports_how_long_an_approval_has_waited(harness: Harness) -> None:
    request = harness.request(approval=ApprovalPolicy(required=True, timeout_seconds=600))
    model = request.model_name
    handle = await harness.start(request)
    waiting = await harness.reach_stage(handle, "awaiting_approval")
    assert waiting.approval_requested_at is not None
    watch = RetrainWatch(harness.client)

    async def sampled() -> float | None:
        await watch.sample()  # visibility lists a new run after a moment
        return _waiting(model)

    first = await eventually(sampled, timeout=30, interval=0.5, message="approval gauge")
    later = await eventually(sampled, timeout=30, interval=0.5)
    assert 0 <= first <= later < 120
    running = REGISTRY.get_sample_value("sentinel_retrains_running", {"stage": "awaiting_approval"})
    assert running is not None and running >= 1

    await handle.execute_update(names.APPROVE_UPDATE, ApprovalDecision(by="alice"), result_type=str)
    await handle.result()

    async def gone() -> bool:
        await watch.sample()
        return _waiting(model) is None

    await eventually(gone, timeout=30, interval=0.5, message="gauge removed once decided")


async def test_tracking_trouble_reported_by_training_shows_in_progress(harness: Harness) -> None:
    release = harness.stubs.hold(names.TRAIN)
    handle = await harness.start(harness.request())
    await harness.stubs.started(names.TRAIN)
    assert (await harness.reach_stage(handle, "training")).tracking is None
    late = "MLflow: 3 waiting, 1 lost after retries; 9 sent"
    await handle.signal(
        names.TRAINING_PROGRESS_SIGNAL, TrainingProgress(epoch=2, epochs=5, tracking=late)
    )

    async def shown() -> bool:
        return (await harness.progress(handle)).tracking == late

    await eventually(shown, timeout=15, interval=0.1, message="tracking line in progress")
    release.set()
    await handle.result()
