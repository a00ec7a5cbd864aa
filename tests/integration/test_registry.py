"""The model registry on the real S3 server: layout, exactly-once publish, aliases, loading.

Weights here are small stand-in objects: the registry never looks inside them (real tiny
models go through evaluate/export/publish in ``test_evaluation_export.py``).
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.contracts.gate import GateDecision
from activities.contracts.registry import (
    AliasEvent,
    ListVersionsRequest,
    ModelVersion,
    PromoteVersionRequest,
    PublishRequest,
    PublishResult,
    RollbackRequest,
    ShowVersionRequest,
)
from activities.infra.errors import IntegrityError, NotFoundError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import aliases, layout, load_registry_model
from activities.registry.activity import RegistryActivities
from activities.registry.core import Registry
from activities.registry.publish import Publisher
from tests.conftest import Queues
from tests.helpers.factories import AT, SNAPSHOT
from tests.helpers.outside import raw, sha256_of, signed_body
from tests.helpers.registry_setup import stored_publish_request
from tests.helpers.stage_workflows import PublishWorkflow


def _model() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def registry(store: ObjectStore, settings: Settings) -> Registry:
    return Registry(store, settings.models_bucket)


@pytest.fixture
def make_request(store: ObjectStore, settings: Settings) -> Callable[..., PublishRequest]:
    """A publish request whose weights and ONNX file really exist in the runs bucket."""

    def make(model: str, workflow_id: str | None = None, **options: Any) -> PublishRequest:
        return stored_publish_request(store, settings, model, workflow_id, **options)

    return make


def _meta(registry: Registry, model: str, version: int) -> ModelVersion:
    return registry.metadata(model, version)


# ---------------------------------------------------------------------- publish and layout
def test_first_version_layout_metadata_and_aliases(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    request = make_request(model, results_csv=True)
    result = Publisher(registry).publish(request)
    assert (result.version, result.promoted, result.created) == (1, True, True)
    assert (result.production_version, result.latest_version) == (1, 1)
    keys = {info.key for info in store.list(settings.models_bucket, f"models/{model}/")}
    for name in ("model.pt", "model.onnx", "metadata.json", "results.csv", "report.md"):
        assert f"models/{model}/v1/{name}" in keys
        assert result.artifacts[name] == f"models/{model}/v1/{name}"
    assert layout.production_key(model) in keys and layout.latest_key(model) in keys
    meta = _meta(registry, model, 1)
    assert meta.workflow_id == request.workflow_id and meta.run_id == request.run_id
    assert meta.created_at == AT and meta.snapshot == SNAPSHOT and meta.epochs == 3
    assert meta.class_names == SNAPSHOT.class_names and meta.hyperparameters["lr0"] == 0.01
    assert meta.parity.passed and meta.onnx_opset == 18 and meta.imgsz == 96
    assert meta.gate.promote and meta.versions["ultralytics"] == "8.4.190"
    assert set(meta.artifacts) == {"model.pt", "model.onnx", "results.csv", "report.md"}
    for record in meta.artifacts.values():  # every artifact's sha256 is the stored bytes'
        assert sha256_of(raw(store, settings.models_bucket, record.key)) == record.sha256
    assert meta.artifacts["model.pt"].sha256 == request.candidate.sha256
    # Signed, with the model signature read from the ONNX graph (tests/helpers/tiny_onnx.py).
    stored = json.loads(raw(store, settings.models_bucket, layout.metadata_key(model, 1)))
    assert stored["hmac"]["key_id"] == "dev" and len(stored["hmac"]["hmac_sha256"]) == 64
    assert signed_body(json.dumps(stored).encode())["model_signature"] == {
        "task": "detect",
        "inputs": [{"name": "images", "shape": [1, 3, 64, 64], "dtype": "float32"}],
        "outputs": [{"name": "output0", "shape": [1, 6, 84], "dtype": "float32"}],
        "class_names": ["circle", "square", "triangle"],
    }
    csv = store.get_bytes(settings.models_bucket, meta.artifacts["results.csv"].key)
    assert csv.startswith(b"epoch,mAP50-95")
    report = store.get_bytes(settings.models_bucket, meta.artifacts["report.md"].key).decode()
    assert "PROMOTED" in report and "| mAP50-95 | 0.6000 |" in report and "| test | 16 |" in report
    production = json.loads(store.get_bytes(settings.models_bucket, layout.production_key(model)))
    assert production["version"] == 1 and production["action"] == "publish"
    latest = json.loads(store.get_bytes(settings.models_bucket, layout.latest_key(model)))
    assert latest["version"] == 1


def test_publish_twice_for_one_run_returns_the_same_version(
    registry: Registry, make_request: Callable[..., PublishRequest]
) -> None:
    model = _model()
    request = make_request(model)
    first = Publisher(registry).publish(request)
    again = Publisher(registry).publish(request)
    assert again.version == first.version == 1
    assert not again.created and again.promoted
    assert registry.scan(model).versions == {1}
    assert len(aliases.history(registry, model)) == 1  # production moved once


def test_worse_candidate_registered_not_promoted(
    registry: Registry, make_request: Callable[..., PublishRequest]
) -> None:
    model = _model()
    Publisher(registry).publish(make_request(model))
    worse = Publisher(registry).publish(make_request(model, promote=False, champion_version=1))
    assert (worse.version, worse.promoted) == (2, False)
    assert worse.production_version == 1 and worse.latest_version == 2
    assert registry.production_version(model) == 1
    assert not _meta(registry, model, 2).gate.promote


def test_parity_failure_blocks_promotion_with_reason_recorded(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    result = Publisher(registry).publish(make_request(model, parity_passed=False))
    assert (result.version, result.promoted) == (1, False)
    assert "ONNX parity failed" in result.reason and "3.2 > 0.01" in result.reason
    assert result.production_version is None
    meta = _meta(registry, model, 1)
    assert not meta.gate.promote and "max abs diff 3.2" in (meta.gate.blocked_by or "")
    assert not meta.parity.passed and meta.parity.max_abs_diff == 3.2
    report = store.get_bytes(settings.models_bucket, meta.artifacts["report.md"].key).decode()
    assert "parity FAILED" in report and "not promoted" in report


def test_production_moved_since_evaluation_is_not_promoted(
    registry: Registry, make_request: Callable[..., PublishRequest]
) -> None:
    model = _model()
    Publisher(registry).publish(make_request(model))  # v1 production
    Publisher(registry).publish(make_request(model, promote=False, champion_version=1))  # v2
    aliases.promote(registry, model, 2, reason="manual", request_id="op-1", at=AT)
    # Evaluated against v1, but production is v2 now: never promote an uncompared model.
    late = Publisher(registry).publish(make_request(model, champion_version=1))
    assert (late.version, late.promoted, late.production_version) == (3, False, 2)
    assert "production moved from v1 to v2" in late.reason


# ---------------------------------------------------------------------- exactly once
class CrashOnce(Publisher):
    """Dies (once) at a chosen step, as a killed worker would."""

    def __init__(self, registry: Registry, step: str) -> None:
        super().__init__(registry)
        self.step = step
        self.crashed = False

    def _maybe_crash(self, step: str) -> None:
        if step == self.step and not self.crashed:
            self.crashed = True
            raise RuntimeError(f"simulated crash before {step}")

    def write_metadata(self, meta: ModelVersion) -> None:
        self._maybe_crash("metadata")
        super().write_metadata(meta)

    def _index(self, request: PublishRequest, version: int) -> int:
        self._maybe_crash("index")
        return super()._index(request, version)


def test_retry_after_crash_between_data_upload_and_metadata_gives_one_version(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    Publisher(registry).publish(make_request(model))  # v1
    request = make_request(model, champion_version=1)
    publisher = CrashOnce(registry, "metadata")
    with pytest.raises(RuntimeError, match="simulated crash"):
        publisher.publish(request)
    # The data objects of v2 are there, but without metadata v2 does not exist yet.
    assert store.exists(settings.models_bucket, f"models/{model}/v2/model.pt")
    assert registry.scan(model).versions == {1}
    assert registry.sync_latest(model) == 1
    result = publisher.publish(request)  # the retry
    assert (result.version, result.created, result.promoted) == (2, True, True)
    scan = registry.scan(model)
    assert scan.versions == {1, 2} and scan.claims == {1, 2}
    assert _meta(registry, model, 2).workflow_id == request.workflow_id
    assert Publisher(registry).publish(request).version == 2  # and once more: same
    assert Publisher(registry).publish(make_request(model, champion_version=2)).version == 3


def test_retry_after_crash_between_claim_and_index_finds_its_claim(
    registry: Registry, make_request: Callable[..., PublishRequest]
) -> None:
    model = _model()
    request = make_request(model)
    publisher = CrashOnce(registry, "index")
    with pytest.raises(RuntimeError, match="simulated crash"):
        publisher.publish(request)
    assert registry.scan(model).claims == {1}
    result = publisher.publish(request)
    assert result.version == 1 and registry.scan(model).claims == {1}


def test_dead_runs_claim_is_never_reused_nor_listed(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    Publisher(registry).publish(make_request(model))
    dead = make_request(model, champion_version=1)
    store.put_bytes(
        settings.models_bucket,
        layout.claim_key(model, 2),
        json.dumps({"workflow_id": dead.workflow_id, "run_id": dead.run_id}).encode(),
    )
    result = Publisher(registry).publish(make_request(model, champion_version=1))
    assert result.version == 3
    listing = RegistryActivities(settings, store).list_versions(ListVersionsRequest(model=model))
    assert [v.version for v in listing.versions] == [3, 1]
    assert listing.latest_version == 3 and listing.total == 2


def test_two_concurrent_publishers_get_consecutive_versions(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    Publisher(registry).publish(make_request(model))  # v1 = N
    barrier = threading.Barrier(2, timeout=30)

    class Racing(Publisher):
        def next_free_version(self, name: str) -> int:
            version = super().next_free_version(name)
            barrier.wait()  # both have seen the same highest claim: both try N+1
            return version

    requests = [make_request(model, promote=False, champion_version=1) for _ in range(2)]
    results: dict[str, PublishResult] = {}
    errors: list[BaseException] = []

    def run(request: PublishRequest) -> None:
        try:
            results[request.workflow_id] = Racing(registry).publish(request)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(r.version for r in results.values()) == [2, 3]
    for request in requests:  # each version holds its own publisher's bytes: no overwrite
        meta = _meta(registry, model, results[request.workflow_id].version)
        assert meta.workflow_id == request.workflow_id
        assert meta.artifacts["model.pt"].sha256 == request.candidate.sha256
        stored = raw(store, settings.models_bucket, meta.artifacts["model.pt"].key)
        assert sha256_of(stored) == request.candidate.sha256
    assert registry.scan(model).versions == {1, 2, 3}
    latest = json.loads(store.get_bytes(settings.models_bucket, layout.latest_key(model)))
    assert latest["version"] == 3


# ---------------------------------------------------------------------- aliases
def test_explicit_promote_and_rollback_move_the_alias_and_are_recorded(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    acts = RegistryActivities(settings, store)
    Publisher(registry).publish(make_request(model))  # v1, production
    Publisher(registry).publish(make_request(model, champion_version=1))  # v2, production
    Publisher(registry).publish(make_request(model, promote=False, champion_version=2))  # v3
    assert registry.production_version(model) == 2

    promoted = acts.promote_version(
        PromoteVersionRequest(
            model=model, version=3, reason="hotfix", request_id="p1", requested_at=AT
        )
    )
    assert (promoted.previous_version, promoted.changed) == (2, True)
    again = acts.promote_version(
        PromoteVersionRequest(
            model=model, version=3, reason="hotfix", request_id="p1", requested_at=AT
        )
    )
    assert again.event == promoted.event  # a retried request changes nothing
    pointer = json.loads(store.get_bytes(settings.models_bucket, layout.production_key(model)))
    assert pointer["version"] == 3 and pointer["reason"] == "hotfix"

    back = acts.rollback_production(
        RollbackRequest(model=model, reason="regression", request_id="r1", requested_at=AT)
    )
    assert (back.from_version, back.to_version) == (3, 2)
    retried = acts.rollback_production(
        RollbackRequest(model=model, reason="regression", request_id="r1", requested_at=AT)
    )
    assert retried.event == back.event and registry.production_version(model) == 2
    back2 = acts.rollback_production(
        RollbackRequest(model=model, reason="still bad", request_id="r2", requested_at=AT)
    )
    assert (back2.from_version, back2.to_version) == (2, 1)
    with pytest.raises(NotFoundError, match="no earlier promoted version"):
        aliases.rollback(registry, model, reason="again", request_id="r3", at=AT)

    history = aliases.history(registry, model)
    assert [(e.action, e.version, e.previous_version) for e in history] == [
        ("publish", 1, None),
        ("publish", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
    ]
    assert [e.reason for e in history[2:]] == ["hotfix", "regression", "still bad"]
    pointer = AliasEvent.model_validate(
        signed_body(store.get_bytes(settings.models_bucket, layout.production_key(model)))
    )
    assert pointer == history[-1]
    shown = acts.show_version(ShowVersionRequest(model=model))
    assert shown.metadata.version == 1 and shown.production and not shown.latest
    listing = acts.list_versions(ListVersionsRequest(model=model))
    assert [v.production for v in listing.versions] == [False, False, True]


def test_promote_unknown_version_and_already_production(
    registry: Registry, make_request: Callable[..., PublishRequest]
) -> None:
    model = _model()
    Publisher(registry).publish(make_request(model))
    with pytest.raises(NotFoundError, match="no version 7"):
        aliases.promote(registry, model, 7, reason="x", request_id="a", at=AT)
    previous, event = aliases.promote(registry, model, 1, reason="x", request_id="b", at=AT)
    assert (previous, event) == (1, None)


# ---------------------------------------------------------------------- verified loading
def test_tampered_model_object_is_refused_on_load(
    registry: Registry,
    store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    request = make_request(model)
    Publisher(registry).publish(request)
    good = load_registry_model(store, settings, model, 1, tmp_path / "ok.pt")
    assert sha256_of(good.read_bytes()) == request.candidate.sha256
    assert load_registry_model(store, settings, model, "production", tmp_path / "p.pt").exists()
    assert load_registry_model(store, settings, model, "v1", tmp_path / "v.pt").exists()
    key = f"models/{model}/v1/model.pt"
    # 1. Replaced through our own store: the recorded sha256 is the new bytes', but the
    #    metadata still names the original digest.
    store.put_bytes(settings.models_bucket, key, b"someone else's weights")
    with pytest.raises(IntegrityError, match="refusing to load"):
        load_registry_model(store, settings, model, 1, tmp_path / "bad1.pt")
    # 2. Bytes replaced with the old sha256 header copied over.
    store.client.put_object(
        settings.models_bucket,
        key,
        io.BytesIO(b"evil"),
        4,
        metadata={"sha256": request.candidate.sha256},
    )
    with pytest.raises(IntegrityError, match="tampered"):
        load_registry_model(store, settings, model, 1, tmp_path / "bad2.pt")
    assert not (tmp_path / "bad1.pt").exists() and not (tmp_path / "bad2.pt").exists()
    with pytest.raises(NotFoundError):
        load_registry_model(store, settings, model, 9, tmp_path / "none.pt")


# ---------------------------------------------------------------------- through Temporal
async def test_publish_activity_retried_by_temporal_after_a_crash_gives_one_version(
    client: Client,
    queues: Queues,
    registry: Registry,
    settings: Settings,
    store: ObjectStore,
    make_request: Callable[..., PublishRequest],
) -> None:
    model = _model()
    acts = RegistryActivities(queues.settings, store)
    acts.publisher = CrashOnce(acts.registry, "metadata")
    request = make_request(model)
    async with Worker(
        client,
        task_queue=queues.cpu,
        workflows=[PublishWorkflow],
        activities=[acts.publish],
        activity_executor=_executor(),
    ):
        result = await client.execute_workflow(
            PublishWorkflow.run, request, id=f"publish-{model}", task_queue=queues.cpu
        )
    assert acts.publisher.crashed  # the first attempt died after uploading the data
    assert (result.version, result.promoted, result.production_version) == (1, True, 1)
    assert registry.scan(model).versions == {1} and registry.scan(model).claims == {1}


def _executor():  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=4)


def test_gate_decision_blocked_keeps_numbers() -> None:
    blocked = GateDecision(promote=True, reason="promoted: x", candidate_map50_95=0.6).blocked("y")
    assert not blocked.promote and blocked.blocked_by == "y" and blocked.candidate_map50_95 == 0.6
