"""Aliases move only from what the caller saw, on the real S3 server (and Temporal for the CLI).

A promote or rollback names the production version it was decided on; anything else is a
refusal naming the current version. A store that ignores If-None-Match cannot make a move
vanish unnoticed, and a ``production.json`` left stale by a crash is repaired from the
alias history. The races at the same instant, repeated, are in ``tests/faults``.
"""

from __future__ import annotations

import threading

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts.controller import CountNewRequest
from activities.contracts.dataset import MinCounts
from activities.contracts.registry import (
    AliasEvent,
    ListVersionsRequest,
    PromoteVersionRequest,
    RollbackRequest,
    RollbackResult,
)
from activities.controller import ControllerActivities
from activities.dataset import DatasetActivities
from activities.infra.settings import Settings
from activities.infra.storage import ObjectInfo, ObjectStore
from activities.registry import aliases, layout
from activities.registry.activity import RegistryActivities
from activities.registry.core import Registry, dump
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import AT, assemble_request, unique_model
from tests.helpers.outside import signed_body
from tests.helpers.registry_setup import GatedStore, published_chain, stored_publish_request
from tests.helpers.stack import Queues, RunWorkers
from workers.dev import synthetic

pytestmark = pytest.mark.timeout(120)


def _moves(registry: Registry, model: str) -> list[tuple[str, int, int | None]]:
    return [(e.action, e.version, e.previous_version) for e in aliases.history(registry, model)]


def _mirror(store: ObjectStore, settings: Settings, model: str) -> AliasEvent:
    data = store.get_bytes(settings.models_bucket, layout.production_key(model))
    return AliasEvent.model_validate(signed_body(data))


def _refusal(error: pytest.ExceptionInfo[ApplicationError]) -> str:
    """The message of an activity's refusal to move production (non-retryable, typed)."""
    assert (error.value.type, error.value.non_retryable) == ("ProductionMovedError", True)
    return error.value.message


def _promote(
    model: str, version: int, expected: int | str | None, rid: str
) -> PromoteVersionRequest:
    return PromoteVersionRequest.model_validate(
        {
            "model": model,
            "version": version,
            "reason": "test",
            "request_id": rid,
            "requested_at": AT,
            "expected_production": expected,
        }
    )


def _rollback(model: str, expected: int | None, rid: str) -> RollbackRequest:
    return RollbackRequest(
        model=model, reason="test", request_id=rid, requested_at=AT, expected_production=expected
    )


def test_a_move_from_another_production_version_is_refused_naming_the_current_one(
    store: ObjectStore, settings: Settings
) -> None:
    model = unique_model("cas")
    published_chain(store, settings, model, 3)  # production v3 (v1 -> v2 -> v3)
    acts = RegistryActivities(settings, store)
    registry = acts.registry
    before = _moves(registry, model)

    with pytest.raises(ApplicationError) as promote:
        acts.promote_version(_promote(model, 1, 2, "p-stale"))
    assert _refusal(promote) == (
        f"production of {model!r} is v3, not v2 as the caller saw it: refusing to promote v1; "
        "look again and decide on v3"
    )
    with pytest.raises(ApplicationError) as rollback:
        acts.rollback_production(_rollback(model, 1, "r-stale"))
    assert "is v3, not v1 as the caller saw it: refusing to roll it back" in _refusal(rollback)
    with pytest.raises(ApplicationError) as from_none:
        acts.promote_version(_promote(model, 1, "none", "p-none"))
    assert "is v3, not none as the caller saw it" in _refusal(from_none)
    assert _moves(registry, model) == before  # nothing moved
    assert registry.production_version(model) == 3

    promoted = acts.promote_version(_promote(model, 1, 3, "p-ok"))
    assert (promoted.previous_version, promoted.version, promoted.changed) == (3, 1, True)
    back = acts.rollback_production(_rollback(model, 1, "r-ok"))
    assert (back.from_version, back.to_version) == (1, 3)
    # A retried request (same request_id) finds its own move, even though production moved.
    assert acts.promote_version(_promote(model, 1, 3, "p-ok")).event == promoted.event
    assert _moves(registry, model)[3:] == [("promote", 1, 3), ("rollback", 3, 1)]
    assert _mirror(store, settings, model) == aliases.history(registry, model)[-1]


def test_the_first_promote_of_a_model_without_production_expects_none(
    store: ObjectStore, settings: Settings
) -> None:
    model = unique_model("cas")
    acts = RegistryActivities(settings, store)
    request = stored_publish_request(store, settings, model, promote=False)
    acts.publisher.publish(request)  # v1, refused by the gate: no production
    with pytest.raises(ApplicationError) as wrong:
        acts.promote_version(_promote(model, 1, 1, "p-wrong"))
    assert "is none, not v1" in _refusal(wrong)
    with pytest.raises(ApplicationError, match="no production version to roll back from"):
        acts.rollback_production(_rollback(model, None, "r-nothing"))
    result = acts.promote_version(_promote(model, 1, "none", "p-first"))
    assert (result.previous_version, result.version, result.changed) == (None, 1, True)


def test_rollbacks_without_an_expected_version_still_move_one_step_each(
    store: ObjectStore, settings: Settings
) -> None:
    """Requests from before ``expected_production``: each moves one step from what it read."""
    model = unique_model("cas")
    published_chain(store, settings, model, 3)
    gated = GatedStore(store, layout.history_prefix(model))
    registry = Registry(gated, settings.models_bucket)
    outcomes: list[object] = []

    def roll(rid: str) -> None:
        try:
            outcomes.append(aliases.rollback(registry, model, reason=rid, request_id=rid, at=AT))
        except aliases.ProductionMovedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=roll, args=(f"old-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert gated.arrivals == 2  # both wrote at the same instant
    moved = [o for o in outcomes if isinstance(o, AliasEvent)]
    refused = [o for o in outcomes if isinstance(o, aliases.ProductionMovedError)]
    assert len(moved) == 1 and len(refused) == 1, outcomes
    assert "is v2, not v3 as the caller saw it" in str(refused[0])
    assert _moves(registry, model)[3:] == [("rollback", 2, 3)]


def test_a_store_ignoring_if_none_match_cannot_make_a_move_vanish(
    store: ObjectStore, settings: Settings
) -> None:
    """Both creates of the same history entry succeed; the overwritten mover notices."""
    model = unique_model("cas")
    published_chain(store, settings, model, 3)
    gated = GatedStore(store, layout.history_prefix(model), ignore_conditions=True)
    acts = RegistryActivities(settings, gated)
    outcomes: list[object] = []

    def roll(rid: str) -> None:
        try:
            outcomes.append(acts.rollback_production(_rollback(model, 3, rid)))
        except ApplicationError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=roll, args=(f"blind-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert gated.arrivals == 2
    moved = [o for o in outcomes if isinstance(o, RollbackResult)]
    refused = [o for o in outcomes if isinstance(o, ApplicationError)]
    assert len(moved) == 1 and len(refused) == 1, outcomes
    assert refused[0].type == "ProductionMovedError" and "is v2, not v3" in refused[0].message
    assert aliases.history(acts.registry, model)[-1] == moved[0].event
    assert _moves(acts.registry, model)[3:] == [("rollback", 2, 3)]


class CrashAfterAppend(ObjectStore):
    """Dies (once) writing ``production.json``: the history entry is there, the mirror stale."""

    crashed = False

    def put_bytes(self, bucket: str, key: str, data: bytes, **options: object) -> ObjectInfo:
        if key.endswith("/aliases/production.json") and not self.crashed:
            self.crashed = True
            raise RuntimeError("simulated crash before mirroring the move")
        return super().put_bytes(bucket, key, data, **options)  # type: ignore[arg-type]


def test_a_stale_production_mirror_is_repaired_from_the_history(
    store: ObjectStore, settings: Settings
) -> None:
    model = unique_model("cas")
    published_chain(store, settings, model, 2)  # production v2
    crashing = CrashAfterAppend(store.client, endpoint=store.endpoint)
    with pytest.raises(RuntimeError, match="simulated crash"):
        RegistryActivities(settings, crashing).promote_version(_promote(model, 1, 2, "p-crash"))
    registry = Registry(store, settings.models_bucket)
    assert registry.production_version(model) == 1  # the move happened (history) ...
    assert _mirror(store, settings, model).version == 2  # ... the mirror was left behind

    listing = RegistryActivities(settings, store).list_versions(ListVersionsRequest(model=model))
    assert listing.production_version == 1
    assert _mirror(store, settings, model) == aliases.history(registry, model)[-1]
    etag = store.stat(settings.models_bucket, layout.production_key(model))
    assert not aliases.repair_production_mirror(registry, model)  # in sync: no write
    assert store.stat(settings.models_bucket, layout.production_key(model)) == etag
    store.delete(settings.models_bucket, layout.production_key(model))  # lost altogether
    assert aliases.repair_production_mirror(registry, model)
    assert _mirror(store, settings, model).version == 1


def test_the_scheduled_check_repairs_a_stale_mirror_too(
    store: ObjectStore, settings: Settings
) -> None:
    """Nobody may run a registry command for days: the controller's check repairs it."""
    model = unique_model("cas")
    prefix = f"datasets/{model}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=8, size=64, verified=True
    )
    dataset = assemble_request(model, prefix, min_counts=MinCounts(train=0, val=0, test=0))
    assembled = ActivityEnvironment().run(
        DatasetActivities(settings, store).assemble_dataset, dataset
    )
    published_chain(store, settings, model, 2, snapshot=assembled.snapshot)  # production v2
    registry = Registry(store, settings.models_bucket)
    first, second = aliases.history(registry, model)
    store.put_bytes(settings.models_bucket, layout.production_key(model), dump(first))  # stale

    counted = ControllerActivities(settings, store).count_new_verified(
        CountNewRequest(model=model, dataset=dataset)
    )
    assert (counted.production_version, counted.verified, counted.new_verified) == (2, 8, 0)
    assert _mirror(store, settings, model) == second


async def test_cli_shows_production_before_moving_it_and_refuses_a_stale_expectation(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
) -> None:
    model = unique_model("cli")
    published_chain(store, settings, model, 2)  # production v2
    async with run_workers(("cpu",)):
        code, out, err = await sentinel_cli(
            queues, "models", "promote", model, "1", "--reason", "hotfix"
        )
        assert code == 0, (out, err)
        assert out.splitlines() == ["production now: v2", "production: v2 -> v1"]
        code, out, err = await sentinel_cli(
            queues, "models", "rollback", model, "--reason", "x", "--expect-production", "2"
        )
        assert (code, out.splitlines()) == (1, ["production expected: v2"])
        assert err == (
            f"error: production of {model!r} is v1, not v2 as the caller saw it: refusing to "
            "roll it back; look again and decide on v1\n"
        )
        code, out, err = await sentinel_cli(
            queues, "models", "rollback", model, "--reason", "bad", "--expect-production", "v1"
        )
        assert code == 0, (out, err)
        assert out.splitlines() == ["production expected: v1", "production: v1 -> v2"]
    code, _, err = await sentinel_cli(
        queues, "models", "promote", model, "1", "--reason", "x", "--expect-production", "latest"
    )
    assert code == 2 and "invalid version 'latest': use e.g. 3, v3 or none" in err
    assert _moves(Registry(store, settings.models_bucket), model) == [
        ("publish", 1, None),
        ("publish", 2, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
    ]
