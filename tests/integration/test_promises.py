"""Promises of the README and docs/architecture.md, each end to end on the real servers.

One model gets two real versions for the module: v1 asks for approval, nobody answers, and
the timeout approves it; v2 is refused by the gate policy of its own request. Workers POST
every run's summary, signed, to a real HTTPS receiver on loopback (a test CA, trusted through
the CA setting). Then: the approval timeout, the request-level refusal, the webhook payloads
(succeeded, failed, canceled), promote and rollback through the client and through the CLI.
Expected values are literals, or read from what the store and the receiver hold, never the
run's own report.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import CancelledError

from activities.contracts import names
from activities.contracts.gate import GatePolicy
from activities.contracts.retrain import ApprovalPolicy, RetrainResult
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.history import event_ids, pending
from tests.helpers.outside import alias, alias_history, metadata
from tests.helpers.polling import eventually
from tests.helpers.stack import Queues, sentinel_for, unique_queues
from tests.helpers.tls import make_test_ca
from tests.helpers.webhook import WebhookReceiver, signature_ok, webhook_config
from workers.dev import synthetic
from workers.factory import build_worker
from workflows.client import SentinelClient

pytestmark = pytest.mark.timeout(420)


@dataclass(frozen=True)
class World:
    """The module's workers (webhook to ``hook``), queues, client and dataset."""

    queues: Queues
    sentinel: SentinelClient
    hook: WebhookReceiver
    prefix: str


@dataclass(frozen=True)
class TwoVersions:
    """A model with v1 (approved by timeout) and v2 (refused by its request's gate)."""

    model: str
    first: RetrainResult
    second: RetrainResult
    first_history: WorkflowHistory


@pytest.fixture(scope="module")
async def world(
    client: Client, settings: Settings, store: ObjectStore, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    prefix = f"datasets/promises-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=3, verified=True
    )
    queues = unique_queues(settings, "promise")
    signing = tmp_path_factory.mktemp("webhook")
    ca = make_test_ca(signing / "ca")  # HTTPS, trusted through SENTINEL_WEBHOOK_CA_FILE only
    with WebhookReceiver(tls=ca) as hook:
        own = queues.settings.model_copy(update=webhook_config(signing, hook.url, ca))
        workers = [build_worker(client, own, kind, store=store) for kind in ("cpu", "gpu")]
        tasks = [asyncio.create_task(worker.run()) for worker in workers]
        try:
            yield World(queues, sentinel_for(client, queues), hook, prefix)
        finally:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="module")
async def two_versions(world: World) -> TwoVersions:
    sentinel, queues = world.sentinel, world.queues
    approval = ApprovalPolicy(required=True, timeout_seconds=1, on_timeout="approve")
    first = tiny_retrain_request(world.prefix, queues, epochs=1, approval=approval)
    model = first.model_name
    await sentinel.start_retrain(first)
    first_result = await asyncio.wait_for(sentinel.result(model), 300)
    first_history = await sentinel.handle(model).fetch_history()
    # No gain can reach +1.0 mAP50-95: this request's own policy refuses any candidate.
    refusing = GatePolicy(min_improvement=1.0)
    second = tiny_retrain_request(world.prefix, queues, epochs=1, model=model, gate=refusing)
    await sentinel.start_retrain(second)
    second_result = await asyncio.wait_for(sentinel.result(model), 300)
    return TwoVersions(model, first_result, second_result, first_history)


# ---------------------------------------------------------------------- approval, gate
async def test_approval_timing_out_with_on_timeout_approve_promotes(
    two_versions: TwoVersions, world: World, store: ObjectStore, settings: Settings
) -> None:
    model, history = two_versions.model, two_versions.first_history
    # Nobody answered: the 1 s approval timer fired, no approve or reject update came.
    timers = event_ids(history, EventType.EVENT_TYPE_TIMER_STARTED)
    assert len(timers) == 1 and len(event_ids(history, EventType.EVENT_TYPE_TIMER_FIRED)) == 1
    timer = next(e for e in history.events if e.event_id == timers[0])
    assert timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() == (
        timedelta(seconds=1)
    )
    assert not event_ids(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    # ... and v1 became production, by the publish of that run.
    first_move = alias_history(store, settings.models_bucket, model)[0]
    assert (first_move["version"], first_move["action"]) == (1, "publish")
    run_id = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
    assert first_move["request_id"] == f"publish:retrain-{model}:{run_id}"
    assert metadata(store, settings.models_bucket, model, 1)["gate"]["promote"] is True


async def test_request_level_gate_policy_refuses_the_candidate(
    two_versions: TwoVersions, store: ObjectStore, settings: Settings
) -> None:
    model = two_versions.model
    meta = metadata(store, settings.models_bucket, model, 2)
    gain = meta["candidate"]["map50_95"] - meta["champion"]["map50_95"]
    assert meta["champion_version"] == 1 and gain < 1.0  # so the policy must refuse
    assert meta["gate"]["policy"]["min_improvement"] == 1.0
    assert meta["gate"]["promote"] is False
    assert "< min improvement +1.0000" in meta["gate"]["reason"]
    assert alias(store, settings.models_bucket, model) == 1  # production stayed
    assert alias(store, settings.models_bucket, model, "latest") == 2
    assert two_versions.second.version == 2 and not two_versions.second.promoted


# ---------------------------------------------------------------------- webhook
async def test_webhook_payloads_of_succeeded_runs(
    two_versions: TwoVersions, world: World, store: ObjectStore, settings: Settings
) -> None:
    model = two_versions.model
    everything = world.hook.payloads(f"retrain-{model}")
    # v1 asked for approval first: reviewers are told it waits (issue 16), then both outcomes.
    assert [(p["outcome"], p["version"], p["promoted"]) for p in everything] == [
        ("awaiting_approval", None, False),
        ("succeeded", 1, True),
        ("succeeded", 2, False),
    ]
    assert everything[0]["approve_command"] == (
        f'sentinel retrain approve {model} --by "$USER" --comment "..."'
    )
    ids = [p["delivery_id"] for p in everything]
    assert len(set(ids)) == 3
    signed = [d for d in world.hook.deliveries if d.json().get("delivery_id") in ids]
    assert len(signed) == 3 and all(signature_ok(d) for d in signed)
    # The URL is a secret: it never enters a run's history (payloads, results, failures).
    assert world.hook.url not in two_versions.first_history.to_json()
    received = everything[1:]
    for payload, version in zip(received, (1, 2), strict=True):
        candidate = metadata(store, settings.models_bucket, model, version)["candidate"]
        assert payload["model_name"] == model
        measured = {"map50_95": candidate["map50_95"], "map50": candidate["map50"]}
        assert payload["metrics"] == measured
        assert payload["duration_seconds"] > 0
    assert received[0]["reason"].startswith("promoted: no champion to compare")
    assert received[1]["reason"].startswith("not promoted: candidate mAP50-95")


async def test_webhook_payloads_of_a_failed_and_a_canceled_run(world: World) -> None:
    sentinel, queues = world.sentinel, world.queues
    failing = tiny_retrain_request(f"datasets/empty-{uuid.uuid4().hex[:6]}", queues)
    await sentinel.start_retrain(failing)
    with pytest.raises(WorkflowFailureError):
        await sentinel.result(failing.model_name)
    canceled = tiny_retrain_request(world.prefix, queues, epochs=50)
    await sentinel.start_retrain(canceled)
    handle = sentinel.handle(canceled.model_name)

    async def training() -> bool:
        return any(i.name == names.TRAIN and i.started for i in pending(await handle.describe()))

    await eventually(training, timeout=120, interval=0.1, message="training running")
    await sentinel.cancel(canceled.model_name)
    with pytest.raises(WorkflowFailureError) as info:
        await sentinel.result(canceled.model_name)
    assert isinstance(info.value.cause, CancelledError)

    [failed] = world.hook.payloads(f"retrain-{failing.model_name}")
    assert (failed["outcome"], failed["version"], failed["promoted"]) == ("failed", None, False)
    assert failed["model_name"] == failing.model_name and failed["metrics"] == {}
    assert failed["reason"].startswith("assembling: ") and "is empty" in failed["reason"]
    [cancel] = world.hook.payloads(f"retrain-{canceled.model_name}")
    assert (cancel["outcome"], cancel["version"]) == ("canceled", None)
    assert (cancel["reason"], cancel["promoted"]) == ("canceled", False)


# ---------------------------------------------------------------------- promote, rollback
async def test_promote_and_rollback_through_the_client(
    two_versions: TwoVersions, world: World, store: ObjectStore, settings: Settings
) -> None:
    model, bucket = two_versions.model, settings.models_bucket
    assert alias(store, bucket, model) == 1
    # The caller saw production at v1: the move is made from there (issue 13).
    promoted = await world.sentinel.promote(model, 2, "hotfix from the client", expect_production=1)
    assert alias(store, bucket, model) == 2 and promoted.version == 2
    move = alias_history(store, bucket, model)[-1]
    assert (move["action"], move["version"], move["previous_version"], move["reason"]) == (
        "promote", 2, 1, "hotfix from the client",
    )  # fmt: skip
    await world.sentinel.rollback(model, "back from the client", expect_production=2)
    assert alias(store, bucket, model) == 1
    move = alias_history(store, bucket, model)[-1]
    assert (move["action"], move["version"], move["previous_version"], move["reason"]) == (
        "rollback", 1, 2, "back from the client",
    )  # fmt: skip


async def test_promote_and_rollback_through_the_cli(
    two_versions: TwoVersions, world: World, store: ObjectStore, settings: Settings
) -> None:
    model, bucket, queues = two_versions.model, settings.models_bucket, world.queues
    assert alias(store, bucket, model) == 1
    code, out, err = await sentinel_cli(queues, "models", "promote", model, "2", "--reason", "cli")
    # The CLI shows the production it read before moving it (issue 13), then the move.
    assert (code, out.strip()) == (0, "production now: v1\nproduction: v1 -> v2"), err
    assert alias(store, bucket, model) == 2
    code, out, err = await sentinel_cli(queues, "models", "rollback", model, "--reason", "undo")
    assert (code, out.strip()) == (0, "production now: v2\nproduction: v2 -> v1"), err
    assert alias(store, bucket, model) == 1
    moves = alias_history(store, bucket, model)[-2:]
    assert [(m["action"], m["version"], m["reason"]) for m in moves] == [
        ("promote", 2, "cli"),
        ("rollback", 1, "undo"),
    ]
    # Every move, whichever path made it, reached the webhook as a signed production event.
    history = alias_history(store, bucket, model)

    def announced() -> dict[int, tuple[str, str, int]]:
        got = {
            p["seq"]: (p["event"], p["action"], p["version"])
            for p in world.hook.received
            if p.get("model_name") == model and "seq" in p
        }
        assert set(got) >= {m["seq"] for m in history}, got
        return got

    events = await eventually(announced, timeout=60, interval=0.2, ignore=AssertionError)
    assert events[1] == ("promoted", "publish", 1)
    assert [events[m["seq"]] for m in history[-2:]] == [
        ("promoted", "promote", 2),
        ("rolled_back", "rollback", 1),
    ]
    production = [d for d in world.hook.deliveries if d.headers["sentinel-event"] == "promoted"]
    assert production and all(signature_ok(d) for d in production)
    # A cancel of the ended run: a clear refusal, nothing moves.
    code, _, err = await sentinel_cli(queues, "retrain", "cancel", model)
    assert code == 1 and "nothing to cancel" in err and "already ended COMPLETED" in err
    assert alias(store, bucket, model) == 1
