"""Bad requests refused before they reach a worker, or handled without failing the run.

Refused at construction or by the client (unknown format, invalid hyperparameters, keys with
``..``, an oversized request: nothing is started), labels out of range dropped and reported by
the assembly, and an unreachable webhook that never fails a run. Requests that fail a run are
in ``test_bad_inputs.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.contracts.retrain import RetrainRequest
from activities.contracts.training import Hyperparameters, S3Base
from activities.dataset import DatasetActivities
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.outside import alias
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from tests.helpers.webhook import webhook_config
from workers.dev import synthetic
from workers.dev.stack import free_port
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


def _with_dataset(request: RetrainRequest, **updates: object) -> RetrainRequest:
    return request.model_copy(update={"dataset": request.dataset.model_copy(update=updates)})


def test_unknown_format_is_refused_at_the_client() -> None:
    with pytest.raises(ValidationError, match="'yolo', 'coco' or 'roboflow'"):
        AssembleRequest(dataset="d", prefix="datasets/d", format="pascal-voc")  # type: ignore[arg-type]


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
    tmp_path: Path,
) -> None:
    sentinel = sentinel_for(client, queues)
    request = tiny_retrain_request(good_prefix, queues, epochs=1)
    dead = webhook_config(tmp_path, f"http://127.0.0.1:{free_port()}/hook")
    async with run_workers(**dead):
        await sentinel.start_retrain(request)
        result = await asyncio.wait_for(sentinel.result(request.model_name), 240)
    assert result.version == 1 and result.promoted
    assert alias(store, settings.models_bucket, request.model_name) == 1
