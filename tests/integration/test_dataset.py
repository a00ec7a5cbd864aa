"""Dataset assembly and materialization against the real S3 server (and real Temporal).

Each test writes its own prefix; materializations that stand for a training node use their
own cache directory, as a GPU worker on another machine would.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from PIL import Image
from pydantic import ValidationError
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest, AssembleResult, MinCounts, SplitRatios
from activities.dataset import DatasetActivities, load_manifest, materialize_snapshot
from activities.dataset.assemble import assemble
from activities.infra.errors import ConfigurationError, IntegrityError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.conftest import Queues, RunWorkers
from tests.helpers.outside import raw, sha256_of
from workers.dev import synthetic

NO_MINIMUM = MinCounts(train=0, val=0, test=0)


def _prefix() -> str:
    return f"datasets/d-{uuid.uuid4().hex[:8]}"


def _request(prefix: str, **fields: object) -> AssembleRequest:
    fields.setdefault("dataset", f"ds-{uuid.uuid4().hex[:8]}")
    fields.setdefault("min_counts", NO_MINIMUM)
    return AssembleRequest(prefix=prefix, **fields)  # type: ignore[arg-type]


def _run(settings: Settings, store: ObjectStore, request: AssembleRequest) -> AssembleResult:
    """The activity itself, in an activity context (heartbeats and cancellation live)."""
    return ActivityEnvironment().run(DatasetActivities(settings, store).assemble_dataset, request)


def _downloads(settings: Settings, store: ObjectStore, request: AssembleRequest):  # type: ignore[no-untyped-def]
    """Assemble outside Temporal, recording how many objects were downloaded and decoded."""
    totals: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if (stage in ("labels", "downloaded") and done == 0) or (
            stage == "decoded" and done == total
        ):
            totals[stage] = totals.get(stage, 0) + total

    return assemble(store, settings, request, progress=progress), totals


def _splits(store: ObjectStore, result: AssembleResult) -> dict[str, str]:
    return {i.key: i.split for i in load_manifest(store, result.snapshot).images}


def _png(size: int = 32, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- formats
def test_yolo_assembly_stores_a_manifest_with_verified_images_only(
    settings: Settings, store: ObjectStore
) -> None:
    prefix = _prefix()
    bucket = settings.data_bucket
    synthetic.upload(store, bucket, prefix, layout="yolo", count=24, verified=True)
    synthetic.upload(store, bucket, prefix, layout="yolo", count=6, start=24)  # not verified
    result = _run(settings, store, _request(prefix))
    assert result.unverified == 6 and not result.reused
    assert sum(result.counts.values()) == 24 and result.counts == result.snapshot.counts
    assert result.class_names == list(synthetic.CLASS_NAMES) == result.snapshot.class_names
    assert (
        result.snapshot.key == f"snapshots/{result.snapshot.dataset}/{result.snapshot.sha256}.json"
    )
    assert result.report["image_without_label"] == 0 and sum(result.report.values()) == 0
    manifest = load_manifest(store, result.snapshot)
    expected = {f"{prefix}/images/{img.stem}.png": img for img in synthetic.generate(24)}
    assert {i.key for i in manifest.images} == set(expected)
    for image in manifest.images:
        source = expected[image.key]
        assert image.sha256 == sha256_of(raw(store, bucket, image.key))  # the bytes' digest
        assert image.labels == source.labels and (image.width, image.height) == (96, 96)
        assert image.etag
    assert manifest.format == "yolo" and manifest.report.unverified == 6


def test_coco_assembly_converts_boxes_and_honours_verified_flags(
    settings: Settings, store: ObjectStore
) -> None:
    prefix = _prefix()
    bucket = settings.data_bucket
    synthetic.upload(store, bucket, prefix, layout="coco", count=16, verified=True)
    synthetic.upload(store, bucket, prefix, layout="coco", count=4, start=16, verified=False)
    result = _run(settings, store, _request(prefix, format="coco"))
    assert result.unverified == 4 and sum(result.counts.values()) == 16
    assert result.class_names == list(synthetic.CLASS_NAMES)
    by_key = {i.key: i for i in load_manifest(store, result.snapshot).images}
    for img in synthetic.generate(16):
        assert by_key[f"{prefix}/images/{img.stem}.png"].labels == img.labels  # same as YOLO


def test_roboflow_assembly_keeps_its_own_splits(settings: Settings, store: ObjectStore) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="roboflow", count=30)
    result = _run(settings, store, _request(prefix, format="roboflow"))
    assert result.counts == {"train": 24, "val": 3, "test": 3}
    for key, split in _splits(store, result).items():
        folder = key[len(prefix) + 1 :].split("/")[0]
        assert split == {"train": "train", "valid": "val", "test": "test"}[folder]


# ----------------------------------------------------------------------------- bad inputs
def test_every_bad_input_kind_is_fixed_or_skipped_and_reported(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = _prefix(), settings.data_bucket
    good = synthetic.generate(6)
    synthetic.upload(store, bucket, prefix, layout="yolo", count=6)
    put = lambda rel, data: store.put_bytes(bucket, f"{prefix}/{rel}", data)  # noqa: E731
    line = "0 0.5 0.5 0.2 0.2\n"
    put("images/corrupt.png", synthetic.corrupt_bytes())
    put("images/truncated.png", synthetic.truncated_png(3))
    put("images/notes.txt", b"not an image")
    put("images/tiny.png", synthetic.tiny_png(8, 40))
    put("images/zz_dupe.png", good[0].png)  # same content as syn_s0_000000.png, sorts after
    put("images/background.png", _png(40))
    cases = {
        "fields": "0 0.5 0.5 0.2\n" + line,
        "value": "0 0.5 x 0.2 0.2\n" + line,
        "class": "7 0.5 0.5 0.2 0.2\n" + line,
        "clipped": "0 0.99 0.5 0.04 0.2\n",
        "absurd": "0 0.5 nan 0.2 0.2\n1 3.0 0.5 0.2 0.2\n" + line,
        "zero": "0 0.5 0.5 0.0 0.2\n" + line,
    }
    for index, (name, text) in enumerate(cases.items()):
        put(f"images/{name}.png", _png(40, (20, 30 * index + 10, 90)))
        put(f"labels/{name}.txt", text.encode())
    put("labels/orphan.txt", line.encode())
    result = _run(settings, store, _request(prefix, max_examples=1))
    expected = {
        "unreadable_image": 2,
        "non_image_file": 1,
        "too_small": 1,
        "wrong_field_count": 1,
        "malformed_value": 1,
        "class_out_of_range": 1,
        "coords_clipped": 1,
        "coords_absurd": 2,
        "zero_area": 1,
        "label_without_image": 1,
        "image_without_label": 1,
        "image_with_bad_labels": 5,  # every label case but "clipped": an object lost its box
        "duplicate_image": 1,
    }
    assert {k: v for k, v in result.report.items() if v} == expected
    assert sum(result.counts.values()) == 6 + 1 + 1  # good + background + clipped
    manifest = load_manifest(store, result.snapshot)
    examples = manifest.report.examples
    assert all(len(v) == 1 for v in examples.values()) and set(examples) == set(expected)
    assert examples["duplicate_image"] == [
        f"{prefix}/images/zz_dupe.png: same content as {prefix}/images/syn_s0_000000.png"
    ]
    assert examples["label_without_image"][0].startswith("labels/orphan.txt")
    assert examples["too_small"] == [f"{prefix}/images/tiny.png: 8x40 px < 10 px"]
    assert examples["image_with_bad_labels"] == [
        f"{prefix}/images/absurd.png: 2 dropped: line 1 coords_absurd '0 0.5 nan 0.2 0.2'; "
        "line 2 coords_absurd '1 3.0 0.5 0.2 0.2'"
    ]
    labels = {i.key.rsplit("/", 1)[1]: i.labels for i in manifest.images}
    assert labels["clipped.png"] == ["0 0.985000 0.500000 0.030000 0.200000"]
    assert not {"absurd.png", "zero.png", "class.png", "fields.png", "value.png"} & set(labels)
    assert labels["background.png"] == []
    assert "zz_dupe.png" not in labels and labels["syn_s0_000000.png"] == good[0].labels


@workflow.defn(sandboxed=False)
class AssembleOnceWorkflow:
    """Test-only: the activity called by name, as the retrain workflow calls it."""

    @workflow.run
    async def run(self, request: AssembleRequest, activity_queue: str) -> AssembleResult:
        return await workflow.execute_activity(
            names.ASSEMBLE_DATASET,
            request,
            result_type=AssembleResult,
            task_queue=activity_queue,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


async def _execute(
    client: Client, queue: str, request: AssembleRequest, activity_queue: str
) -> AssembleResult:
    return await client.execute_workflow(
        AssembleOnceWorkflow.run,
        args=[request, activity_queue],
        id=f"assemble-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        result_type=AssembleResult,
    )


async def test_below_minimum_fails_the_workflow_with_a_non_retryable_error(
    client: Client, settings: Settings, store: ObjectStore, queues: Queues
) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=12)
    for i in range(3):  # unreadable images do not count
        store.put_bytes(settings.data_bucket, f"{prefix}/images/bad{i}.png", b"junk")
    request = _request(prefix, min_counts=MinCounts(train=5, val=4, test=4))
    acts = DatasetActivities(settings, store)
    async with Worker(
        client,
        task_queue=queues.cpu,
        workflows=[AssembleOnceWorkflow],
        activities=[acts.assemble_dataset],
        activity_executor=ThreadPoolExecutor(max_workers=2),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        with pytest.raises(WorkflowFailureError) as info:
            await _execute(client, queues.cpu, request, queues.cpu)
    activity_error = info.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE  # one attempt only
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "BadInputError" and cause.non_retryable
    assert "too few images" in cause.message and "unreadable_image=3" in cause.message
    assert "val has" in cause.message and "test has" in cause.message
    assert "(minimum 4)" in cause.message and "train has" not in cause.message


async def test_registered_activity_serves_a_workflow_on_the_cpu_queue(
    client: Client, settings: Settings, store: ObjectStore, queues: Queues, run_workers: RunWorkers
) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=20)
    request = _request(prefix)
    workflow_queue = f"{queues.cpu}-wf"
    async with (
        run_workers(kinds=("cpu",)),
        Worker(
            client,
            task_queue=workflow_queue,
            workflows=[AssembleOnceWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        first = await _execute(client, workflow_queue, request, queues.cpu)
        again = await _execute(client, workflow_queue, request, queues.cpu)
    assert sum(first.counts.values()) == 20 and not first.reused
    assert again.reused and again.snapshot == first.snapshot


# ----------------------------------------------------------------------------- clear errors
def test_clear_typed_errors(settings: Settings, store: ObjectStore) -> None:
    with pytest.raises(ValidationError, match="format"):
        _request(_prefix(), format="voc")
    with pytest.raises(ValidationError, match="invalid dataset name"):
        _request(_prefix(), dataset="../x")
    with pytest.raises(ValidationError, match="bucket root"):
        _request("")
    with pytest.raises(ApplicationError, match="is empty") as info:
        _run(settings, store, _request(_prefix()))
    assert info.value.type == "BadInputError" and info.value.non_retryable
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=3)
    store.put_bytes(settings.data_bucket, f"{prefix}/verified.jsonl", b"")
    with pytest.raises(ApplicationError, match="no verified images") as info:
        _run(settings, store, _request(prefix))
    assert info.value.type == "BadInputError"
    with pytest.raises(ApplicationError, match="does not exist") as info:
        _run(settings, store, _request(prefix, verified_key=f"{prefix}/nope.jsonl"))
    assert info.value.type == "NotFoundError"
    with pytest.raises(ApplicationError, match="bucket 'no-such-bucket' does not exist") as info:
        _run(settings, store, _request(prefix, bucket="no-such-bucket"))
    assert info.value.type == "ConfigurationError" and info.value.non_retryable
    with pytest.raises(ConfigurationError):
        assemble(store, settings, _request(prefix, bucket="no-such-bucket"))


def test_cancel_lands_between_steps(settings: Settings, store: ObjectStore) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=10)
    env = ActivityEnvironment()
    beats: list[dict] = []

    def on_heartbeat(*details: object) -> None:
        beats.append(details[0])  # type: ignore[arg-type]
        env.cancel()

    env.on_heartbeat = on_heartbeat
    with pytest.raises(CancelledError):
        env.run(DatasetActivities(settings, store).assemble_dataset, _request(prefix))
    assert beats[0]["stage"] == "listed" and len(beats) == 1


# ----------------------------------------------------------------------------- stability
def test_split_is_stable_when_the_dataset_grows_by_20_percent(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = _prefix(), settings.data_bucket
    seed = 97  # content no other test uses: decoding is remembered per content
    synthetic.upload(store, bucket, prefix, layout="yolo", count=50, seed=seed, verified=True)
    for i in range(3):  # a pinned golden set
        img = synthetic.generate_one(i, seed=7)
        store.put_bytes(bucket, f"{prefix}/images/golden/{img.stem}.png", img.png)
        store.put_bytes(bucket, f"{prefix}/labels/golden/{img.stem}.txt", img.label_text.encode())
    golden = [f"images/golden/{synthetic.stem_for(7, i)}.png" for i in range(3)]
    store.put_bytes(
        bucket,
        f"{prefix}/verified.jsonl",
        store.get_bytes(bucket, f"{prefix}/verified.jsonl")
        + "".join(json.dumps({"image": g}) + "\n" for g in golden).encode(),
    )
    request = _request(
        prefix,
        test_prefix="images/golden",
        split_ratios=SplitRatios(train=0.7, val=0.15, test=0.15),
    )
    old, old_downloads = _downloads(settings, store, request)
    synthetic.upload(
        store, bucket, prefix, layout="yolo", count=10, start=50, seed=seed, verified=True
    )
    new, new_downloads = _downloads(settings, store, request)
    assert sum(old.counts.values()) == 53 and sum(new.counts.values()) == 63
    assert new.snapshot.sha256 != old.snapshot.sha256
    before, after = _splits(store, old), _splits(store, new)
    assert all(after[key] == split for key, split in before.items())
    old_test = {k for k, s in before.items() if s == "test"}
    assert old_test <= {k for k, s in after.items() if s == "test"}
    assert {f"{prefix}/{g}" for g in golden} <= old_test
    assert len(set(after.values())) == 3
    # The grown source re-downloads and re-decodes only what is new: 10 images, 10 labels.
    assert new_downloads == {"labels": 10, "downloaded": 10, "decoded": 10}
    assert old_downloads == {"labels": 54, "downloaded": 53, "decoded": 53}  # + data.yaml


def test_same_source_gives_the_same_hash_and_reuses_the_snapshot(
    settings: Settings, store: ObjectStore, tmp_path: Path
) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="coco", count=12, verified=True)
    request = _request(prefix, format="coco")
    first = _run(settings, store, request)
    elsewhere = settings.model_copy(update={"cache_dir": tmp_path / "other-node"})
    second = _run(elsewhere, store, request)
    assert second.snapshot == first.snapshot and second.counts == first.counts
    assert not first.reused and second.reused
    assert len(list(store.list(settings.data_bucket, f"snapshots/{request.dataset}/"))) == 1


# ----------------------------------------------------------------------------- materialization
def test_materialization_is_incremental_and_deterministic(
    settings: Settings, store: ObjectStore, tmp_path: Path
) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=40)
    request = _request(prefix)
    gpu = settings.model_copy(update={"cache_dir": tmp_path / "gpu-node"})  # another machine
    snapshot = _run(settings, store, request).snapshot
    progress: list[tuple[str, int, int]] = []
    first = materialize_snapshot(store, gpu, snapshot, on_progress=lambda *a: progress.append(a))
    assert first.downloaded == 40 and ("downloaded", 40, 40) in progress
    assert (
        first.root
        == (gpu.cache_dir / "datasets" / snapshot.dataset / snapshot.sha256[:16]).resolve()
    )
    assert first.counts == snapshot.counts and (first.root / ".complete").is_file()
    data = yaml.safe_load(first.data_yaml.read_text())
    assert data["path"] == str(first.root) and data["names"] == dict(
        enumerate(synthetic.CLASS_NAMES)
    )
    assert (data["train"], data["val"], data["test"]) == (
        "images/train",
        "images/val",
        "images/test",
    )
    expected = {f"{prefix}/images/{img.stem}.png": img for img in synthetic.generate(40)}
    for image in load_manifest(store, snapshot).images:
        name = f"{Path(image.key).stem}_{image.sha256[:12]}"
        assert (first.root / "images" / image.split / f"{name}.png").read_bytes() == expected[
            image.key
        ].png
        assert (first.root / "labels" / image.split / f"{name}.txt").read_text() == expected[
            image.key
        ].label_text
    assert (
        sum(len(list((first.root / "images" / s).iterdir())) for s in ("train", "val", "test"))
        == 40
    )

    again = materialize_snapshot(store, gpu, snapshot)
    assert again == first.__class__(first.root, first.data_yaml, first.counts, 0)
    shutil.rmtree(first.root)  # the dataset dir is gone but the object cache is not
    rebuilt = materialize_snapshot(store, gpu, snapshot)
    assert rebuilt.downloaded == 0 and rebuilt.root == first.root

    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=10, start=40)
    grown = materialize_snapshot(store, gpu, _run(settings, store, request).snapshot)
    assert grown.downloaded == 10 and sum(grown.counts.values()) == 50
    assert grown.root != first.root and first.root.is_dir()
    assert not list(grown.root.parent.glob(".*tmp-*"))
    for leased in (first, again, rebuilt, grown):
        leased.release()


def test_materialization_refuses_a_tampered_manifest(
    settings: Settings, store: ObjectStore, tmp_path: Path
) -> None:
    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=10)
    snapshot = _run(settings, store, _request(prefix)).snapshot
    manifest = json.loads(store.get_bytes(snapshot.bucket, snapshot.key))
    manifest["images"][0]["labels"] = []
    store.client.put_object(
        snapshot.bucket,
        snapshot.key,
        io.BytesIO(json.dumps(manifest).encode()),
        len(json.dumps(manifest)),
    )
    gpu = settings.model_copy(update={"cache_dir": tmp_path / "gpu-node"})
    with pytest.raises(IntegrityError, match="tampered"):
        materialize_snapshot(store, gpu, snapshot)
    assert not (gpu.cache_dir / "datasets" / snapshot.dataset / snapshot.sha256[:16]).exists()


def test_interrupted_materialization_never_looks_complete(
    settings: Settings, store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activities.dataset import materialize

    prefix = _prefix()
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=12)
    snapshot = _run(settings, store, _request(prefix)).snapshot
    gpu = settings.model_copy(update={"cache_dir": tmp_path / "gpu-node"})
    root = (gpu.cache_dir / "datasets" / snapshot.dataset / snapshot.sha256[:16]).resolve()
    real_link, calls = materialize._link, []

    def dying_link(source: Path, target: Path) -> None:  # the process "dies" mid-build
        calls.append(target)
        if len(calls) == 5:
            raise OSError("disk gone")
        real_link(source, target)

    monkeypatch.setattr(materialize, "_link", dying_link)
    with pytest.raises(OSError, match="disk gone"):
        materialize_snapshot(store, gpu, snapshot)
    assert not root.exists() and not list(root.parent.glob(".*"))
    monkeypatch.setattr(materialize, "_link", real_link)
    (root / "images").mkdir(parents=True)  # a half directory without the marker
    with materialize_snapshot(store, gpu, snapshot) as done:
        assert done.downloaded == 0 and (root / ".complete").is_file()  # objects were kept
    assert sum(done.counts.values()) == 12
