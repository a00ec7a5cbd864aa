"""Attacks by someone who can write one object into a bucket the workers read, each refused
with its exact error (real Temporal, real S3 server, real workers). Attack (b), checkpoints
planted for a retry, is in ``test_attacks_checkpoints.py`` (real training).

The planted file is a pickle whose unpickling would create a marker file
(:mod:`tests.helpers.attacks`); every test that plants one ends with the marker absent. Runs
fail in one non-retryable attempt of the stage that met the attack.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.contracts import names
from activities.contracts.bases import CatalogBase, RegistryBase, S3Base, base_text
from activities.contracts.retrain import RetrainRequest
from activities.contracts.weights import catalog_key
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import layout
from tests.helpers.attacks import planted_pickle
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import tiny_retrain_request, unique_model
from tests.helpers.history import activities_in, only
from tests.helpers.outside import raw, sha256_of
from tests.helpers.registry_setup import published_chain
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from workers.dev import synthetic

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def images(settings: Settings, store: ObjectStore) -> str:
    """16 verified synthetic images, uploaded once for the module."""
    prefix = f"datasets/attack-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=16, seed=5, verified=True
    )
    return prefix


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker-the-attacker-wants"


@pytest.fixture
def planted(tmp_path: Path, marker: Path) -> Path:
    return planted_pickle(tmp_path / "evil.pt", marker)


async def _refused(
    client: Client, queues: Queues, run_workers: RunWorkers, request: RetrainRequest
) -> ApplicationError:
    """Run ``request`` to its end: the train stage's error, checked final (one attempt)."""
    sentinel = sentinel_for(client, queues)
    async with run_workers():
        await sentinel.start_retrain(request)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(sentinel.result(request.model_name), 180)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable, cause
    history = await sentinel.handle(request.model_name).fetch_history()
    failing = only(activities_in(history), names.TRAIN)
    assert (failing.attempt, failing.outcome) == (1, "failed"), failing
    return cause


def _request(images: str, queues: Queues, base: object) -> RetrainRequest:
    return tiny_retrain_request(images, queues, epochs=1, base=base)


# ------------------------------------------------------------------ (a) S3 bases
async def test_planted_pickle_as_an_s3_base_never_runs(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    images: str,
    planted: Path,
    marker: Path,
) -> None:
    """Uploaded where users upload; even a request carrying its true digest (a user tricked
    into vouching for it) does not unpickle it: the restricted loader refuses its globals."""
    key = f"uploads/{uuid.uuid4().hex[:6]}/yolo11n.pt"
    store.put_file(settings.data_bucket, key, planted)
    vouched = S3Base(bucket=settings.data_bucket, key=key, sha256=sha256_of(planted.read_bytes()))
    cause = await _refused(client, queues, run_workers, _request(images, queues, vouched))
    assert cause.type == "BadInputError", cause.message
    assert f"base model '{base_text(vouched)}' cannot be loaded" in cause.message
    assert "references types outside the supported Ultralytics checkpoint format" in cause.message
    assert not marker.exists()


async def test_pickle_swapped_under_an_s3_base_is_refused_before_loading(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    images: str,
    planted: Path,
    marker: Path,
) -> None:
    """The request vouches for other bytes (the genuine file); the swap fails the digest."""
    key = f"uploads/{uuid.uuid4().hex[:6]}/base.pt"
    store.put_file(settings.data_bucket, key, planted)  # recorded sha256 = the planted bytes
    genuine = S3Base(bucket=settings.data_bucket, key=key, sha256="ab" * 32)
    cause = await _refused(client, queues, run_workers, _request(images, queues, genuine))
    assert cause.type == "IntegrityError", cause.message
    assert f"{settings.data_bucket}/{key} failed verification" in cause.message
    assert "!= expected abababababab… (object corrupted or tampered)" in cause.message
    assert not marker.exists()


async def test_unsigned_catalog_record_is_refused(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    images: str,
    planted: Path,
    marker: Path,
) -> None:
    """A catalog entry written without the key, vouching for the planted pickle."""
    name = f"evil-{uuid.uuid4().hex[:6]}.pt"
    key = f"uploads/{name}"
    store.put_file(settings.data_bucket, key, planted)
    record = {
        "name": name, "bucket": settings.data_bucket, "key": key,
        "sha256": sha256_of(planted.read_bytes()), "size": planted.stat().st_size,
        "task": "detect", "class_names": ["circle"], "imgsz": 64, "source_file": name,
        "added_at": "2026-12-01T00:00:00Z",
    }  # fmt: skip
    store.put_bytes(settings.models_bucket, catalog_key(name), json.dumps(record).encode())
    base = CatalogBase(name=name)
    cause = await _refused(client, queues, run_workers, _request(images, queues, base))
    assert cause.type == "IntegrityError", cause.message
    assert cause.message.endswith(
        f"{settings.models_bucket}/{catalog_key(name)} is not signed: refusing to trust it"
    )
    assert not marker.exists()
    async with run_workers(kinds=("cpu",)):  # the listing marks it instead of failing
        code, out, err = await sentinel_cli(queues, "weights", "list", env={"COLUMNS": "400"})
    assert code == 0, (out, err)
    assert f"{name} UNTRUSTED: {settings.models_bucket}/{catalog_key(name)} is not signed" in out, (
        out
    )


# ------------------------------------------------------------------ (c) the registry
@pytest.fixture
def victim(store: ObjectStore, settings: Settings) -> str:
    """A model with v1 and v2 (production), published by the real publisher."""
    model = unique_model()
    published_chain(store, settings, model, 2)
    return model


def _metadata(store: ObjectStore, settings: Settings, model: str, version: int) -> dict:
    return json.loads(raw(store, settings.models_bucket, layout.metadata_key(model, version)))


async def test_planted_pickle_over_a_versions_model_pt_is_refused(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    images: str,
    victim: str,
    planted: Path,
    marker: Path,
) -> None:
    key = layout.artifact_key(victim, 1, "model.pt")
    store.put_file(settings.models_bucket, key, planted)  # its recorded sha256 matches it
    base = RegistryBase(model=victim, version="1")
    cause = await _refused(client, queues, run_workers, _request(images, queues, base))
    recorded = _metadata(store, settings, victim, 1)["artifacts"]["model.pt"]["sha256"]
    assert cause.type == "IntegrityError", cause.message
    assert f"failed while training: refusing to load {victim} v1 model.pt: " in cause.message
    assert f"{settings.models_bucket}/{key} failed verification" in cause.message
    assert f"(metadata.json records sha256 {recorded[:12]}…)" in cause.message
    assert not marker.exists()


async def test_rehashed_but_unsigned_metadata_is_refused(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    images: str,
    victim: str,
    planted: Path,
    marker: Path,
) -> None:
    """The attacker replaces model.pt and rewrites metadata.json with its digest (valid JSON,
    valid sha256 header) but cannot sign it."""
    key = layout.artifact_key(victim, 2, "model.pt")
    store.put_file(settings.models_bucket, key, planted)
    meta = _metadata(store, settings, victim, 2)
    meta["artifacts"]["model.pt"].update(
        sha256=sha256_of(planted.read_bytes()), size=planted.stat().st_size
    )
    metadata_key = layout.metadata_key(victim, 2)
    store.put_bytes(settings.models_bucket, metadata_key, json.dumps(meta, indent=2).encode())
    base = RegistryBase(model=victim, version="production")
    cause = await _refused(client, queues, run_workers, _request(images, queues, base))
    assert cause.type == "IntegrityError", cause.message
    assert cause.message.endswith(
        f"{settings.models_bucket}/{metadata_key} does not match its signature (key 'dev'): "
        "modified after signing"
    )
    assert not marker.exists()


async def test_forged_alias_history_entry_is_refused(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    images: str,
    victim: str,
) -> None:
    """An appended history entry (production back to v1) written without the key."""
    entry = layout.history_key(victim, 3)
    forged = {
        "seq": 3, "version": 1, "previous_version": 2, "action": "rollback",
        "reason": "trust me", "request_id": "forged", "at": "2026-12-01T00:00:00Z",
    }  # fmt: skip
    store.put_bytes(settings.models_bucket, entry, json.dumps(forged).encode())
    base = RegistryBase(model=victim, version="production")
    cause = await _refused(client, queues, run_workers, _request(images, queues, base))
    assert cause.type == "IntegrityError", cause.message
    assert cause.message.endswith(
        f"{settings.models_bucket}/{entry} is not signed: refusing to trust it"
    )


async def test_models_verify_and_list_name_every_tampered_object(
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    victim: str,
) -> None:
    files = len(_metadata(store, settings, victim, 1)["artifacts"])
    onnx_key = layout.artifact_key(victim, 1, "model.onnx")
    store.put_bytes(settings.models_bucket, onnx_key, b"not the exported model")
    meta = _metadata(store, settings, victim, 2)
    meta["gate"]["reason"] = "looks great"  # any field: the signature covers them all
    store.put_bytes(
        settings.models_bucket, layout.metadata_key(victim, 2), json.dumps(meta).encode()
    )
    clean = unique_model()
    published_chain(store, settings, clean, 1)
    wide = {"COLUMNS": "400"}
    async with run_workers(kinds=("cpu",)):
        code, out, err = await sentinel_cli(queues, "models", "verify", victim, env=wide)
        listed, listing, _ = await sentinel_cli(queues, "models", "list", victim, env=wide)
        ok_code, ok_out, ok_err = await sentinel_cli(queues, "models", "verify", clean, env=wide)
    bucket = settings.models_bucket
    assert code == 1, (out, err)
    assert f"v1: FAILED (metadata signature, {files} files)" in out, out
    assert f"  model.onnx: IntegrityError: {bucket}/{onnx_key} failed verification" in out
    assert "v2: FAILED (metadata signature, 0 files)" in out, out
    assert (
        f"  metadata.json: IntegrityError: {bucket}/{layout.metadata_key(victim, 2)} does not "
        "match its signature (key 'dev'): modified after signing"
    ) in out
    assert "alias history: 2 entries" in out and f"{victim}: verification FAILED" in out
    assert listed == 0 and f"v2 UNTRUSTED: {bucket}/{layout.metadata_key(victim, 2)}" in listing
    assert ok_code == 0, (ok_out, ok_err)
    assert f"{clean}: every signature and file verified" in ok_out
