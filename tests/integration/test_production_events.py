"""Production events on the real S3 server and a real loopback receiver: every move of the
production alias (a publish that promotes, a promote, a rollback, a promote of an older
version) is announced as ``promoted`` or ``rolled_back``, signed; a receiver that is down
gets retries with the same delivery id, and the move never waits for it or fails with it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.contracts.registry import AliasEvent, PromoteVersionRequest, RollbackRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.notify.announce import ProductionAnnouncer
from activities.registry.activity import RegistryActivities
from tests.helpers.factories import AT, unique_model
from tests.helpers.registry_setup import stored_publish_request
from tests.helpers.webhook import WebhookReceiver, signature_ok, webhook_config
from workers.dev.stack import free_port

pytestmark = pytest.mark.timeout(120)


class Recorder:
    """Registry activities wired to an announcer, keeping its delivery threads to join."""

    def __init__(self, settings: Settings, store: ObjectStore, **announcer: float) -> None:
        self.announcer = ProductionAnnouncer(settings, **announcer)  # type: ignore[arg-type]
        self.threads: list[threading.Thread] = []
        self.activities = RegistryActivities(settings, store, on_production_move=self._moved)

    def _moved(self, model: str, event: AliasEvent) -> None:
        thread = self.announcer.announce(model, event)
        assert thread is not None
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


def _promote(model: str, version: int, rid: str) -> PromoteVersionRequest:
    return PromoteVersionRequest(
        model=model, version=version, reason=f"to v{version}", request_id=rid, requested_at=AT
    )


def test_every_move_of_production_is_announced(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    model = unique_model("events")
    env = ActivityEnvironment()
    with WebhookReceiver() as hook:
        own = settings.model_copy(update=webhook_config(tmp_path, hook.url))
        recorder = Recorder(own, store)
        registry = recorder.activities
        for champion in (None, 1):  # v1 over nothing, v2 over v1: both promoted by publish
            request = stored_publish_request(store, settings, model, champion_version=champion)
            assert env.run(registry.publish, request).promoted
        env.run(registry.promote_version, _promote(model, 1, "back-to-1"))  # an older version
        env.run(registry.promote_version, _promote(model, 2, "again-2"))
        env.run(
            registry.rollback_production,
            RollbackRequest(model=model, reason="bad", request_id="rb", requested_at=AT),
        )
        recorder.join()
    bodies = sorted((d.json() for d in hook.deliveries), key=lambda b: b["seq"])
    assert [(b["event"], b["action"], b["version"], b["previous_version"]) for b in bodies] == [
        ("promoted", "publish", 1, None),
        ("promoted", "publish", 2, 1),
        ("rolled_back", "promote", 1, 2),
        ("promoted", "promote", 2, 1),
        ("rolled_back", "rollback", 1, 2),
    ]
    assert all(signature_ok(d) for d in hook.deliveries)
    assert {b["model_name"] for b in bodies} == {model}
    assert len({b["delivery_id"] for b in bodies}) == 5
    assert [d.headers["sentinel-event"] for d in hook.deliveries] == [
        d.json()["event"] for d in hook.deliveries
    ]


def test_a_receiver_that_is_down_gets_retries_with_the_same_id(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    model = unique_model("events-retry")
    request = stored_publish_request(store, settings, model)
    with WebhookReceiver(fail_first=2) as hook:
        own = settings.model_copy(update=webhook_config(tmp_path, hook.url))
        recorder = Recorder(own, store, first_delay_seconds=0.05)
        assert ActivityEnvironment().run(recorder.activities.publish, request).promoted
        recorder.join()
    assert [d.status for d in hook.deliveries] == [503, 503, 204]
    assert len({d.headers["sentinel-delivery"] for d in hook.deliveries}) == 1
    assert all(signature_ok(d) for d in hook.deliveries)


def test_a_dead_receiver_never_fails_or_holds_the_move(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    model = unique_model("events-dead")
    request = stored_publish_request(store, settings, model)
    own = settings.model_copy(
        update=webhook_config(tmp_path, f"http://127.0.0.1:{free_port()}/hook")
    )
    recorder = Recorder(own, store, first_delay_seconds=30.0)
    result = ActivityEnvironment().run(recorder.activities.publish, request)
    # returned while the announcer still waits 30 s before its next attempt
    assert result.promoted and result.production_version == 1
    assert [t.is_alive() for t in recorder.threads] == [True]
