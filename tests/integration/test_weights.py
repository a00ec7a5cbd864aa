"""Starting from the weights a team has, on the real stack and through the ``sentinel`` CLI.

A model trained outside the product (a tiny Ultralytics run in this module) is imported as v1
and the first retrain is gated against it; pretrained weights enter the catalog and serve as a
base, downloaded once per worker; a base whose bytes do not match its digest is refused before
training; every kind of base works from the CLI and is recorded in the version's metadata.

Over 300 lines on purpose: the five scenarios share the module's fixtures (the team's files,
one of them trained here, and the dataset); split, the outside model would be trained twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.contracts.bases import CatalogBase
from activities.contracts.registry import ModelVersion
from activities.contracts.training import TrainRequest, TrainResult
from activities.contracts.weights import blob_key
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore, sha256_file
from activities.registry.core import Registry
from activities.training.control import ControlActivities
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import tiny_hyperparameters, tiny_retrain_request, unique_model
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from tests.helpers.stage_workflows import TrainOnlyParams, TrainOnlyWorkflow
from tests.helpers.training import make_snapshot
from workers.dev import synthetic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
IMGSZ = 64


@dataclass(frozen=True)
class Files:
    """Weights files a team brings: the detector it runs today, and pretrained weights."""

    outside: Path  # trained outside the product on the shapes classes
    pretrained: Path  # an untrained 80-class yolov8n, as a stand-in for COCO weights
    segmenter: Path  # a segmentation model: a task Sentinel does not train


@pytest.fixture(scope="module")
def files(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Files:
    """A tiny Ultralytics run on local synthetic data, as a team would have done it."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("team")
    data = synthetic.write_yolo_dir(root / "data", synthetic.generate(24, seed=21, size=IMGSZ))
    YOLO("yolov8n.yaml").train(
        data=str(data), epochs=6, imgsz=IMGSZ, batch=4, device="cpu", workers=0, mosaic=0.0,
        warmup_epochs=0, nbs=4, seed=0, deterministic=True, val=False, plots=False, amp=False,
        verbose=False, project=str(root / "runs"), name="outside", exist_ok=True,
    )  # fmt: skip
    YOLO("yolov8n.yaml").save(str(root / "pretrained.pt"))
    YOLO("yolov8n-seg.yaml").save(str(root / "segmenter.pt"))
    return Files(
        root / "runs" / "outside" / "weights" / "last.pt",
        root / "pretrained.pt",
        root / "segmenter.pt",
    )


@pytest.fixture(scope="module")
def prefix(settings: Settings, store: ObjectStore) -> str:
    """24 verified synthetic images (train, val and test splits all non-empty)."""
    prefix = f"datasets/weights-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=3, verified=True
    )
    return prefix


def metadata(store: ObjectStore, settings: Settings, model: str, version: int) -> ModelVersion:
    return Registry(store, settings.models_bucket).metadata(model, version)


def request_file(tmp_path: Path, prefix: str, queues: Queues, model: str) -> str:
    """A tiny one-epoch retrain request of ``model`` as a JSON file (``--request``)."""
    path = tmp_path / f"{model}.json"
    path.write_text(tiny_retrain_request(prefix, queues, epochs=1, model=model).model_dump_json())
    return str(path)


async def test_import_then_retrain_from_catalog_weights_is_gated_against_the_import(
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    files: Files,
    prefix: str,
    tmp_path: Path,
) -> None:
    model, entry = unique_model("team"), f"coco-{uuid.uuid4().hex[:6]}.pt"
    imported = ("models", "import", model)
    data = ("--prefix", prefix, "--imgsz", str(IMGSZ), "--device", "cpu")
    notes = tmp_path / "notes.pt"
    notes.write_text("not weights")
    async with run_workers():
        # What a team runs today, but for other classes: refused, naming both class lists.
        code, _, err = await sentinel_cli(queues, *imported, str(files.pretrained), *data)
        assert code == 1 and "trained on classes" in err and "'circle'" in err, err
        code, out, err = await sentinel_cli(queues, *imported, str(files.outside), *data)
        assert code == 0, (out, err)
        assert f"{model} v1 (imported)" in out and "promoted: imported" in out

        code, _, err = await sentinel_cli(queues, "weights", "add", str(notes))
        assert code == 2 and "is not a PyTorch checkpoint" in err, err
        add = ("weights", "add", str(files.pretrained), "--name", entry)
        code, out, err = await sentinel_cli(queues, *add)
        assert code == 0 and f"weights:{entry} added: detect, 80 classes" in out, (out, err)
        code, out, _ = await sentinel_cli(queues, *add)  # the same bytes again: a no-op
        assert code == 0 and "already in the catalog (same bytes)" in out
        other = ("weights", "add", str(files.outside), "--name", entry)
        code, _, err = await sentinel_cli(queues, *other)  # other bytes, a taken name
        assert code == 1 and f"already has other weights named {entry!r}" in err, err
        code, out, _ = await sentinel_cli(queues, "weights", "list")
        assert code == 0 and entry in out

        retrain = ("retrain", "start", "--request", request_file(tmp_path, prefix, queues, model))
        code, out, err = await sentinel_cli(
            queues, *retrain, "--base", f"weights:{entry}", "--follow"
        )
        assert code == 0, (out, err)
        assert "champion v1 mAP50-95" in out
        code, listing, _ = await sentinel_cli(queues, "models", "list", model)
    assert code == 0 and "imported" in listing and "trained" in listing

    v1, v2 = metadata(store, settings, model, 1), metadata(store, settings, model, 2)
    digest = sha256_file(files.outside)
    assert v1.imported is not None and v1.imported.sha256 == digest
    assert (v1.imported.file_name, v1.epochs, v1.base, v1.hyperparameters) == (
        files.outside.name,
        0,
        None,
        {},
    )
    assert v1.artifacts["model.pt"].sha256 == digest  # registered as it was, byte for byte
    assert v1.class_names == list(synthetic.CLASS_NAMES) and v1.test_images >= 1
    assert v2.champion_version == 1 and v2.champion is not None and v2.imported is None
    assert v2.base is not None and v2.base.spec == f"weights:{entry}"
    assert v2.base.sha256 == sha256_file(files.pretrained)
    report = store.get_bytes(settings.models_bucket, v2.artifacts["report.md"].key).decode()
    assert "## Candidate vs champion v1" in report and f"`weights:{entry}`" in report
    v1_report = store.get_bytes(settings.models_bucket, v1.artifacts["report.md"].key).decode()
    assert "- imported: `last.pt`" in v1_report and "epochs" not in v1_report


async def test_every_kind_of_base_works_from_the_cli_and_is_recorded(
    queues: Queues,
    run_workers: RunWorkers,
    client: Client,
    store: ObjectStore,
    settings: Settings,
    files: Files,
    prefix: str,
    tmp_path: Path,
) -> None:
    model, entry = unique_model("kinds"), f"default-{uuid.uuid4().hex[:6]}.pt"
    s3_key = f"pretrained/{uuid.uuid4().hex[:6]}/outside.pt"
    s3_digest = store.put_file(settings.runs_bucket, s3_key, files.outside).sha256
    retrain = ("retrain", "start", "--request", request_file(tmp_path, prefix, queues, model))
    catalog_digest = sha256_file(files.pretrained)
    async with run_workers(default_base=f"weights:{entry}"):  # the deployment's default base
        await sentinel_for(client, queues).add_weights(files.pretrained, entry)
        code, out, err = await sentinel_cli(queues, *retrain, "--follow")  # names no base
        assert code == 0 and f"{model} v1" in out, (out, err)
        v1_digest = metadata(store, settings, model, 1).artifacts["model.pt"].sha256
        kinds = [
            (f"registry:{model}@latest", v1_digest),
            (f"s3://{settings.runs_bucket}/{s3_key}#sha256={s3_digest}", s3_digest),
            ("yolov8n.yaml", None),
        ]
        for base, _ in kinds:
            code, out, err = await sentinel_cli(queues, *retrain, "--base", base, "--follow")
            assert code == 0, (base, out, err)
        code, out, _ = await sentinel_cli(queues, "models", "show", model, "--version", "2")
    assert code == 0 and json.loads(out)["base"]["spec"] == f"registry:{model}@latest"
    recorded = [metadata(store, settings, model, v).base for v in (1, 2, 3, 4)]
    expected = [(f"weights:{entry}", catalog_digest), *kinds]
    assert [(r.spec, r.sha256) for r in recorded if r is not None] == expected
    assert metadata(store, settings, model, 2).parent_version is None  # an alias, not a number


@asynccontextmanager
async def train_only_worker(
    client: Client, store: ObjectStore, settings: Settings
) -> AsyncIterator[str]:
    """TrainOnlyWorkflow (and write_control) on a queue of its own; yields the queue."""
    queue = f"train-only-{uuid.uuid4().hex[:8]}"
    control = ControlActivities(settings, store)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[TrainOnlyWorkflow],
        activities=[control.write_control],
        activity_executor=ThreadPoolExecutor(2),
    ):
        yield queue


async def train_only(
    client: Client, queues: Queues, queue: str, request: TrainRequest
) -> TrainResult:
    """One ``train`` activity through a real worker, as the retrain pipeline runs it."""
    return await client.execute_workflow(
        TrainOnlyWorkflow.run,
        TrainOnlyParams(request=request, gpu_queue=queues.gpu, cpu_queue=queue, max_attempts=2),
        id=f"train-{uuid.uuid4().hex[:10]}",
        task_queue=queue,
        execution_timeout=timedelta(minutes=5),
    )


async def test_a_catalog_base_is_downloaded_once_per_worker(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    files: Files,
    tmp_path: Path,
) -> None:
    entry = f"once-{uuid.uuid4().hex[:6]}.pt"
    snapshot = make_snapshot(settings, store, count=12, seed=4, size=IMGSZ)
    request = TrainRequest(
        snapshot=snapshot,
        model_name="shapes",
        base=CatalogBase(name=entry),
        hyperparameters=tiny_hyperparameters(epochs=1),
    )
    cache = tmp_path / "worker-cache"
    async with (
        run_workers(kinds=("cpu",)),  # reads the weights when they are added
        run_workers(kinds=("gpu",), cache_dir=cache),  # the training worker, its cache empty
        train_only_worker(client, store, queues.settings) as queue,
    ):
        added = await sentinel_for(client, queues).add_weights(files.pretrained, entry)
        first = await train_only(client, queues, queue, request)
        # From here on the catalog's copy is gone: only the worker's cache can serve it.
        store.delete(added.record.bucket, added.record.key)
        second = await train_only(client, queues, queue, request)
    digest = added.record.sha256
    downloads = [result.base_downloaded for result in (first, second)]
    assert downloads == [True, False], downloads
    assert first.base == second.base and first.base is not None
    assert (first.base.spec, first.base.sha256) == (f"weights:{entry}", digest)
    cached = cache / "weights" / f"{digest}.pt"
    assert sha256_file(cached) == digest  # kept by the first run, reused by the second


async def test_a_base_whose_bytes_do_not_match_its_digest_is_refused_before_training(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    files: Files,
    prefix: str,
    tmp_path: Path,
) -> None:
    s3_key = f"pretrained/{uuid.uuid4().hex[:6]}/yolo.pt"
    store.put_file(settings.runs_bucket, s3_key, files.pretrained)
    wrong = sha256_file(files.outside)  # the digest of other bytes
    s3_model, catalog_model = unique_model("tamper"), unique_model("tamper")
    entry = f"tampered-{uuid.uuid4().hex[:6]}.pt"
    sentinel = sentinel_for(client, queues)
    async with run_workers(cache_dir=tmp_path / "fresh-cache"):
        code, out, err = await sentinel_cli(
            queues, "retrain", "start", "--follow",
            "--request", request_file(tmp_path, prefix, queues, s3_model),
            "--base", f"s3://{settings.runs_bucket}/{s3_key}#sha256={wrong}",
        )  # fmt: skip
        assert code == 1, (out, err)
        assert "failed while training" in out and "failed verification" in out, out

        added = await sentinel.add_weights(files.pretrained, entry)
        record = added.record
        assert record.key == blob_key(record.sha256)
        store.put_file(record.bucket, record.key, files.outside)  # swapped behind the record
        (tmp_path / "fresh-cache" / "weights" / f"{record.sha256}.pt").unlink()  # read on add
        request = tiny_retrain_request(
            prefix, queues, epochs=1, model=catalog_model, base=CatalogBase(name=entry)
        )
        await sentinel.start_retrain(request)
        with pytest.raises(WorkflowFailureError) as failure:
            await sentinel.result(catalog_model)
        progress = await sentinel.progress(catalog_model)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("IntegrityError", True)
    assert "failed while training" in cause.message and "tampered" in cause.message
    assert progress.epoch == 0
    for model in (s3_model, catalog_model):  # no checkpoint, no version: only the attempt's log
        run_prefix = f"runs/retrain-{model}/"
        left = [info.key for info in store.list(settings.runs_bucket, run_prefix)]
        assert left == [f"{run_prefix}logs/attempt-1.log"], left
        log = store.get_bytes(settings.runs_bucket, left[0]).decode()
        assert "failed verification" in log, log
        assert not list(store.list(settings.models_bucket, f"models/{model}/"))


async def test_catalog_weights_of_another_task_are_refused_before_training(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    files: Files,
    prefix: str,
    tmp_path: Path,
) -> None:
    entry = f"seg-{uuid.uuid4().hex[:6]}.pt"
    model = unique_model("seg")
    sentinel = sentinel_for(client, queues)
    async with run_workers():
        added = await sentinel.add_weights(files.segmenter, entry)
        request = tiny_retrain_request(
            prefix, queues, epochs=1, model=model, base=CatalogBase(name=entry)
        )
        await sentinel.start_retrain(request)
        with pytest.raises(WorkflowFailureError) as failure:
            await sentinel.result(model)
    assert added.record.task == "segment"
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "BadInputError"
    assert f"catalog weights {entry!r} are a segment model" in cause.message
