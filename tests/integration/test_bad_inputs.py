"""Bad-input catalogue: one test per kind, each with its exact error type and message part.

Every pipeline case retrains a model that has a production version (trained once for the
module by a real run), with the bad request, on in-process workers; then checks, from the
outside, that the failure was final and the registry untouched:

* the error's type and message, and that it is non-retryable: the history shows exactly one
  attempt of the failing activity, failed with a non-retryable application error;
* every object under ``models/{name}/`` has the same bytes (etag) as before, production still
  names v1.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.contracts import names
from activities.contracts.retrain import RetrainRequest
from activities.contracts.training import RegistryBase, S3Base
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.history import activities_in, only
from tests.helpers.outside import alias, objects, raw
from tests.helpers.stack import (
    S3_TEST_KEY,
    Queues,
    RunWorkers,
    prepared_store,
    sentinel_for,
    unique_queues,
)
from workers.dev import synthetic
from workers.dev.stack import S3Server, free_port
from workers.factory import build_worker

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def good_prefix(settings: Settings, store: ObjectStore) -> str:
    """16 verified synthetic images, uploaded once for the module."""
    prefix = f"datasets/bad-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=16, seed=11, verified=True
    )
    return prefix


@pytest.fixture(scope="module")
async def production(
    client: Client, settings: Settings, store: ObjectStore, good_prefix: str
) -> AsyncIterator[str]:
    """A model whose v1 is production (one real run): what no bad request may touch."""
    queues = unique_queues(settings, "bad")
    request = tiny_retrain_request(good_prefix, queues, epochs=1)
    workers = [build_worker(client, queues.settings, kind, store=store) for kind in ("cpu", "gpu")]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        sentinel = sentinel_for(client, queues)
        await sentinel.start_retrain(request)
        await asyncio.wait_for(sentinel.result(request.model_name), 240)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
    assert alias(store, settings.models_bucket, request.model_name) == 1
    yield request.model_name


async def _failure_on(
    client: Client, queues: Queues, request: RetrainRequest, activity: str
) -> ApplicationError:
    """Run ``request`` (workers running) to its end; returns its error, checked to be final:
    exactly one attempt of ``activity``, failed non-retryably."""
    sentinel = sentinel_for(client, queues)
    await sentinel.start_retrain(request)
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(sentinel.result(request.model_name), 180)
    history = await sentinel.handle(request.model_name).fetch_history()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable, cause
    failing = only(activities_in(history), activity)
    assert (failing.attempt, failing.outcome) == (1, "failed"), failing
    assert failing.non_retryable_failure, failing.failure
    return cause


Expect = Callable[..., Awaitable[ApplicationError]]


@pytest.fixture
def expect(
    client: Client, queues: Queues, run_workers: RunWorkers, store: ObjectStore, settings: Settings
) -> Expect:
    """``await expect(request, (activity, error type), *parts)``: ``request`` (for the
    production model) fails in ``activity`` with that error type naming every part, in one
    attempt, and leaves every object of the model's registry as it was."""

    async def run(request: RetrainRequest, failing: tuple[str, str], *parts: str) -> object:
        before = objects(store, settings.models_bucket, f"models/{request.model_name}/")
        async with run_workers():
            cause = await _failure_on(client, queues, request, failing[0])
        assert cause.type == failing[1], (cause.type, cause.message)
        for part in parts:
            assert part in cause.message, cause.message
        assert objects(store, settings.models_bucket, f"models/{request.model_name}/") == before
        assert alias(store, settings.models_bucket, request.model_name) == 1
        return cause

    return run


def _with_dataset(request: RetrainRequest, **updates: object) -> RetrainRequest:
    return request.model_copy(update={"dataset": request.dataset.model_copy(update=updates)})


# ----------------------------------------------------------------------- dataset problems
async def test_missing_bucket(expect: Expect, queues: Queues, production: str) -> None:
    request = tiny_retrain_request("datasets/x", queues, model=production)
    request = _with_dataset(request, bucket="no-such-bucket-here")
    await expect(
        request,
        (names.ASSEMBLE_DATASET, "ConfigurationError"),
        "'no-such-bucket-here' does not exist",
    )


async def test_wrong_credentials(
    client: Client,
    queues: Queues,
    tmp_path: Path,
    store: ObjectStore,
    settings: Settings,
    production: str,
) -> None:
    """Workers with a wrong key on an S3 server holding the production model: refused at once,
    and that server's registry (the one they used) is exactly as it was."""
    server = S3Server(tmp_path / "s3", port=free_port())
    server.start()  # no authentication yet: seeded with the production model first
    try:
        theirs = prepared_store(settings.model_copy(update={"s3_endpoint": server.endpoint}))
        for key in objects(store, settings.models_bucket, f"models/{production}/"):
            theirs.put_bytes(settings.models_bucket, key, raw(store, settings.models_bucket, key))
        before = objects(theirs, settings.models_bucket, f"models/{production}/")
        _moto_authentication(server, on=True)  # from now on every key is refused
        bad = queues.settings.model_copy(
            update={"s3_endpoint": server.endpoint, "s3_access_key": SecretStr("wrong")}
        )
        workers = [build_worker(client, bad, kind) for kind in ("cpu", "gpu")]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            request = tiny_retrain_request("datasets/x", queues, model=production)
            cause = await _failure_on(client, queues, request, names.ASSEMBLE_DATASET)
        finally:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)
        _moto_authentication(server, on=False)
        assert objects(theirs, settings.models_bucket, f"models/{production}/") == before
        assert alias(theirs, settings.models_bucket, production) == 1
    finally:
        server.stop()
    assert cause.type == "ConfigurationError" and "refused the credentials" in cause.message
    assert "SENTINEL_S3_ACCESS_KEY" in cause.message and S3_TEST_KEY not in cause.message


def _moto_authentication(server: S3Server, *, on: bool) -> None:
    """Switch moto's request authentication on (no key it did not issue is accepted) or off."""
    body = b"0" if on else b"inf"  # requests allowed before authentication starts
    url = f"http://{server.endpoint}/moto-api/reset-auth"
    post = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(post) as reply:
        assert reply.status == 200


async def test_empty_prefix(expect: Expect, queues: Queues, production: str) -> None:
    empty = f"datasets/empty-{uuid.uuid4().hex[:6]}"
    request = tiny_retrain_request(empty, queues, model=production)
    await expect(
        request,
        (names.ASSEMBLE_DATASET, "BadInputError"),
        "is empty",
        "failed while assembling",
    )


async def test_all_images_corrupt(
    expect: Expect, queues: Queues, store: ObjectStore, settings: Settings, production: str
) -> None:
    prefix = f"datasets/corrupt-{uuid.uuid4().hex[:6]}"
    summary = synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=16, seed=12, verified=True
    )
    for index, key in enumerate(summary.image_keys):
        data = synthetic.corrupt_bytes(seed=index) if index % 2 else synthetic.truncated_png(index)
        store.put_bytes(settings.data_bucket, key, data)
    request = tiny_retrain_request(prefix, queues, model=production)
    cause = await expect(
        request,
        (names.ASSEMBLE_DATASET, "BadInputError"),
        "too few images",
        "0 usable",
    )
    assert "unreadable_image" in cause.message


async def test_all_labels_unverified(
    expect: Expect, queues: Queues, store: ObjectStore, settings: Settings, production: str
) -> None:
    prefix = f"datasets/unverified-{uuid.uuid4().hex[:6]}"
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=8, seed=14)
    line = json.dumps({"image": "images/not-there.png"}) + "\n"
    store.put_bytes(settings.data_bucket, f"{prefix}/verified.jsonl", line.encode())
    request = tiny_retrain_request(prefix, queues, model=production)
    await expect(
        request,
        (names.ASSEMBLE_DATASET, "BadInputError"),
        "no verified images",
        "8 unverified",
    )


async def test_too_few_images_for_a_split(
    expect: Expect, queues: Queues, store: ObjectStore, settings: Settings, production: str
) -> None:
    prefix = f"datasets/few-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=3, seed=15, verified=True
    )
    request = tiny_retrain_request(prefix, queues, model=production)
    await expect(
        request,
        (names.ASSEMBLE_DATASET, "BadInputError"),
        "too few images",
        "(minimum 4)",
    )


# ----------------------------------------------------------------------- model problems
async def test_class_list_differing_from_the_champion(
    expect: Expect, queues: Queues, good_prefix: str, production: str
) -> None:
    renamed = ["cat", "dog", "bird"]
    request = _with_dataset(
        tiny_retrain_request(good_prefix, queues, epochs=1, model=production),
        dataset=f"{production}-renamed",
        class_names=renamed,
    )
    await expect(
        request,
        (names.EVALUATE, "BadInputError"),
        str(renamed),
        str(list(synthetic.CLASS_NAMES)),
        "failed while evaluating",
    )


async def test_unknown_base_model(
    expect: Expect, queues: Queues, good_prefix: str, production: str
) -> None:
    base = RegistryBase(model=f"nobody-{uuid.uuid4().hex[:6]}", version="7")
    request = tiny_retrain_request(good_prefix, queues, epochs=1, base=base, model=production)
    await expect(
        request,
        (names.TRAIN, "NotFoundError"),
        f"model {base.model!r} has no version 7",
        "failed while training",
    )


async def test_tampered_base_model_hash(
    expect: Expect,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
    production: str,
) -> None:
    key = f"pretrained/{uuid.uuid4().hex[:6]}/base.pt"
    store.put_bytes(settings.data_bucket, key, b"pretend these are weights")
    base = S3Base(bucket=settings.data_bucket, key=key, sha256="0" * 64)
    request = tiny_retrain_request(good_prefix, queues, epochs=1, base=base, model=production)
    await expect(
        request,
        (names.TRAIN, "IntegrityError"),
        "failed verification",
        "tampered",
    )


async def test_unknown_pass_through_argument_fails_before_training(
    expect: Expect,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
    production: str,
) -> None:
    request = tiny_retrain_request(good_prefix, queues, epochs=1, model=production)
    hp = request.hyperparameters.model_copy(update={"extra": {"mosiac": 0.0}})
    request = request.model_copy(update={"hyperparameters": hp})

    def run_objects() -> dict[str, str]:
        # The attempt's log is the one thing a refused attempt writes (it says why).
        found = objects(store, settings.runs_bucket, f"runs/retrain-{production}/")
        return {key: etag for key, etag in found.items() if "/logs/" not in key}

    runs_before = run_objects()
    await expect(
        request,
        (names.TRAIN, "BadInputError"),
        "unknown Ultralytics argument 'mosiac'",
        "did you mean 'mosaic'",
    )
    # Before training: the run wrote nothing (the production run's objects are as they were).
    assert run_objects() == runs_before
