"""Bad-input catalogue: one test per kind, each with its exact error type and message part.

Every pipeline case runs the real RetrainWorkflow on in-process workers and checks that the
model registry is untouched (no new ``models/{name}/`` objects, production unchanged).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.contracts.retrain import RetrainRequest
from activities.contracts.training import Hyperparameters, RegistryBase, S3Base
from activities.dataset import DatasetActivities
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry.core import Registry
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.stack import S3_TEST_KEY, Queues, RunWorkers, sentinel_for
from workers.dev import synthetic
from workers.dev.stack import S3Server, free_port
from workers.factory import build_worker
from workflows.client import MAX_REQUEST_BYTES, RequestTooLargeError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def good_prefix(settings: Settings, store: ObjectStore) -> str:
    """16 verified synthetic images, uploaded once for the module."""
    prefix = f"datasets/bad-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=16, seed=11, verified=True
    )
    return prefix


def _models(store: ObjectStore, settings: Settings, model: str) -> list[str]:
    return [o.key for o in store.list(settings.models_bucket, f"models/{model}/")]


async def _failure(
    client: Client, queues: Queues, run_workers: RunWorkers, request: RetrainRequest
) -> ApplicationError:
    """Run ``request`` to its end and return the ApplicationError it failed with."""
    sentinel = sentinel_for(client, queues)
    async with run_workers():
        await sentinel.start_retrain(request)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(sentinel.result(request.model_name), 180)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def _assert_untouched(store: ObjectStore, settings: Settings, model: str) -> None:
    assert _models(store, settings, model) == []
    assert Registry(store, settings.models_bucket).production_version(model) is None


async def _expect(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    request: RetrainRequest,
    error_type: str,
    *parts: str,
) -> ApplicationError:
    cause = await _failure(client, queues, run_workers, request)
    assert cause.type == error_type, (cause.type, cause.message)
    for part in parts:
        assert part in cause.message, cause.message
    _assert_untouched(store, settings, request.model_name)
    return cause


def _with_dataset(request: RetrainRequest, **updates: object) -> RetrainRequest:
    return request.model_copy(update={"dataset": request.dataset.model_copy(update=updates)})


# ----------------------------------------------------------------------- dataset problems
async def test_missing_bucket(
    client: Client, queues: Queues, run_workers: RunWorkers, store: ObjectStore, settings: Settings
) -> None:
    request = tiny_retrain_request("datasets/x", queues)
    request = _with_dataset(request, bucket="no-such-bucket-here")
    await _expect(
        client, queues, run_workers, store, settings, request,
        "ConfigurationError", "'no-such-bucket-here' does not exist",
    )  # fmt: skip


async def test_wrong_credentials(
    client: Client, queues: Queues, tmp_path: Path, store: ObjectStore, settings: Settings
) -> None:
    server = S3Server(tmp_path / "s3", port=free_port())
    server.start(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # every key is refused
    try:
        bad = queues.settings.model_copy(
            update={"s3_endpoint": server.endpoint, "s3_access_key": SecretStr("wrong")}
        )
        workers = [build_worker(client, bad, kind) for kind in ("cpu", "gpu")]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            sentinel = sentinel_for(client, queues)
            request = tiny_retrain_request("datasets/x", queues)
            await sentinel.start_retrain(request)
            with pytest.raises(WorkflowFailureError) as info:
                await asyncio.wait_for(sentinel.result(request.model_name), 120)
        finally:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ConfigurationError"
    assert "refused the credentials" in cause.message
    assert "SENTINEL_S3_ACCESS_KEY" in cause.message and S3_TEST_KEY not in cause.message
    _assert_untouched(store, settings, request.model_name)


async def test_empty_prefix(
    client: Client, queues: Queues, run_workers: RunWorkers, store: ObjectStore, settings: Settings
) -> None:
    request = tiny_retrain_request(f"datasets/empty-{uuid.uuid4().hex[:6]}", queues)
    await _expect(
        client, queues, run_workers, store, settings, request, "BadInputError", "is empty",
        "failed while assembling",
    )  # fmt: skip


def test_unknown_format_is_refused_at_the_client() -> None:
    with pytest.raises(ValidationError, match="'yolo', 'coco' or 'roboflow'"):
        AssembleRequest(dataset="d", prefix="datasets/d", format="pascal-voc")  # type: ignore[arg-type]


async def test_all_images_corrupt(
    client: Client, queues: Queues, run_workers: RunWorkers, store: ObjectStore, settings: Settings
) -> None:
    prefix = f"datasets/corrupt-{uuid.uuid4().hex[:6]}"
    summary = synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=16, seed=12, verified=True
    )
    for index, key in enumerate(summary.image_keys):
        data = synthetic.corrupt_bytes(seed=index) if index % 2 else synthetic.truncated_png(index)
        store.put_bytes(settings.data_bucket, key, data)
    request = tiny_retrain_request(prefix, queues)
    cause = await _expect(
        client, queues, run_workers, store, settings, request, "BadInputError",
        "too few images", "0 usable",
    )  # fmt: skip
    assert "unreadable_image" in cause.message


def test_labels_out_of_range_are_skipped_and_reported(
    store: ObjectStore, settings: Settings
) -> None:
    """An image whose every label is invalid is not a background: it is left out and reported
    (with the lines); when nothing usable is left the assembly fails with the counts, and a
    dataset of backgrounds only fails instead of training on them."""
    prefix = f"datasets/range-{uuid.uuid4().hex[:6]}"
    summary = synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=6, seed=13, verified=True
    )
    label_keys = [k for k in summary.keys if k.endswith(".txt") and "/labels/" in k]
    for key in label_keys:
        store.put_bytes(settings.data_bucket, key, b"7 0.5 0.5 0.2 0.2\n")
    request = AssembleRequest(
        dataset=f"range-{uuid.uuid4().hex[:6]}",
        prefix=prefix,
        min_counts=MinCounts(train=0, val=0, test=0),
    )
    assemble = DatasetActivities(settings, store).assemble_dataset
    with pytest.raises(ApplicationError) as info:
        ActivityEnvironment().run(assemble, request)
    assert info.value.type == "BadInputError" and info.value.non_retryable
    assert "no usable images" in info.value.message
    assert "class_out_of_range=6, image_with_bad_labels=6" in info.value.message
    # One good label file: that image is kept, the five others stay out (never backgrounds),
    # also with the per-line policy (no valid line is left in them).
    store.put_bytes(settings.data_bucket, label_keys[0], b"0 0.5 0.5 0.2 0.2\n")
    for policy in ("skip_image", "drop_lines"):
        result = ActivityEnvironment().run(
            assemble, request.model_copy(update={"bad_labels": policy})
        )
        assert sum(result.counts.values()) == 1
        assert result.report["class_out_of_range"] == 5
        assert result.report["image_with_bad_labels"] == 5
        assert result.report["image_without_label"] == 0
    # Empty label files are genuine backgrounds; backgrounds alone are refused.
    for key in label_keys:
        store.put_bytes(settings.data_bucket, key, b"")
    with pytest.raises(ApplicationError) as info:
        ActivityEnvironment().run(assemble, request)
    assert "no labelled boxes left" in info.value.message
    assert "image_without_label=6" in info.value.message


async def test_all_labels_unverified(
    client: Client, queues: Queues, run_workers: RunWorkers, store: ObjectStore, settings: Settings
) -> None:
    prefix = f"datasets/unverified-{uuid.uuid4().hex[:6]}"
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=8, seed=14)
    line = json.dumps({"image": "images/not-there.png"}) + "\n"
    store.put_bytes(settings.data_bucket, f"{prefix}/verified.jsonl", line.encode())
    request = tiny_retrain_request(prefix, queues)
    await _expect(
        client, queues, run_workers, store, settings, request, "BadInputError",
        "no verified images", "8 unverified",
    )  # fmt: skip


async def test_too_few_images_for_a_split(
    client: Client, queues: Queues, run_workers: RunWorkers, store: ObjectStore, settings: Settings
) -> None:
    prefix = f"datasets/few-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=3, seed=15, verified=True
    )
    request = tiny_retrain_request(prefix, queues)
    await _expect(
        client, queues, run_workers, store, settings, request, "BadInputError",
        "too few images", "(minimum 4)",
    )  # fmt: skip


# ----------------------------------------------------------------------- model problems
async def test_class_list_differing_from_the_champion(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
) -> None:
    sentinel = sentinel_for(client, queues)
    first = tiny_retrain_request(good_prefix, queues, epochs=1)
    model = first.model_name
    async with run_workers():
        await sentinel.start_retrain(first)
        v1 = await asyncio.wait_for(sentinel.result(model), 240)
    assert v1.version == 1 and v1.production_version == 1
    before = _models(store, settings, model)
    renamed = ["cat", "dog", "bird"]
    second = _with_dataset(
        tiny_retrain_request(good_prefix, queues, epochs=1, model=model),
        dataset=f"{model}-renamed",
        class_names=renamed,
    )
    cause = await _failure(client, queues, run_workers, second)
    assert cause.type == "BadInputError", cause.message
    assert str(renamed) in cause.message and str(list(synthetic.CLASS_NAMES)) in cause.message
    assert "failed while evaluating" in cause.message
    assert Registry(store, settings.models_bucket).production_version(model) == 1
    after = _models(store, settings, model)
    assert not [k for k in after if k.startswith(f"models/{model}/v2/")]
    assert set(after) - set(before) <= {k for k in after if "/claims/" in k}


async def test_unknown_base_model(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
) -> None:
    base = RegistryBase(model=f"nobody-{uuid.uuid4().hex[:6]}", version="7")
    request = tiny_retrain_request(good_prefix, queues, epochs=1, base=base)
    await _expect(
        client, queues, run_workers, store, settings, request, "NotFoundError",
        f"model {base.model!r} has no version 7", "failed while training",
    )  # fmt: skip


async def test_tampered_base_model_hash(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
) -> None:
    key = f"pretrained/{uuid.uuid4().hex[:6]}/base.pt"
    store.put_bytes(settings.data_bucket, key, b"pretend these are weights")
    base = S3Base(bucket=settings.data_bucket, key=key, sha256="0" * 64)
    request = tiny_retrain_request(good_prefix, queues, epochs=1, base=base)
    await _expect(
        client, queues, run_workers, store, settings, request, "IntegrityError",
        "failed verification", "tampered",
    )  # fmt: skip


# ----------------------------------------------------------------------- request problems
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "greater than or equal to 1"),
        ("imgsz", 100, "multiple of 32"),
        ("imgsz", 0, "greater than or equal to 32"),
        ("lr0", -0.01, "greater than 0"),
    ],
)
def test_invalid_hyperparameters_are_refused_at_construction(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Hyperparameters(**{field: value})  # type: ignore[arg-type]


async def test_unknown_pass_through_argument_fails_before_training(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
) -> None:
    request = tiny_retrain_request(good_prefix, queues, epochs=1)
    hp = request.hyperparameters.model_copy(update={"extra": {"mosiac": 0.0}})
    request = request.model_copy(update={"hyperparameters": hp})
    cause = await _expect(
        client, queues, run_workers, store, settings, request, "BadInputError",
        "unknown Ultralytics argument 'mosiac'", "did you mean 'mosaic'",
    )  # fmt: skip
    # Before training: no checkpoint was ever written for the run.
    runs = store.list(settings.runs_bucket, f"runs/retrain-{request.model_name}/")
    assert not [o.key for o in runs if "/checkpoints/" in o.key], cause.message


@pytest.mark.parametrize(
    "build",
    [
        lambda: AssembleRequest(dataset="d", prefix="datasets/../secrets"),
        lambda: AssembleRequest(dataset="d", prefix="datasets/d", verified_key="a/../../b.jsonl"),
        lambda: S3Base(bucket="sentinel-data", key="../outside/base.pt"),
        lambda: AssembleRequest(dataset="..", prefix="datasets/d"),
    ],
)
def test_object_keys_with_dot_dot_are_refused(build: object) -> None:
    with pytest.raises(ValidationError, match=r"'\.\.'"):
        build()  # type: ignore[operator]


async def test_oversized_request_is_refused_by_the_client(
    client: Client, queues: Queues, good_prefix: str
) -> None:
    names = [f"class-{i:05d}-" + "x" * 200 for i in range(1500)]  # ~320 KB of JSON
    request = _with_dataset(tiny_retrain_request(good_prefix, queues), class_names=names)
    with pytest.raises(RequestTooLargeError, match=f"over the {MAX_REQUEST_BYTES} byte limit"):
        await sentinel_for(client, queues).start_retrain(request)
    with pytest.raises(RPCError, match="not found"):  # nothing was started
        await sentinel_for(client, queues).status(request.model_name)


async def test_unreachable_webhook_does_not_fail_the_run(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    good_prefix: str,
) -> None:
    sentinel = sentinel_for(client, queues)
    request = tiny_retrain_request(good_prefix, queues, epochs=1)
    async with run_workers(webhook_url=f"http://127.0.0.1:{free_port()}/hook"):
        await sentinel.start_retrain(request)
        result = await asyncio.wait_for(sentinel.result(request.model_name), 240)
    assert result.version == 1 and result.promoted
    assert Registry(store, settings.models_bucket).production_version(request.model_name) == 1
