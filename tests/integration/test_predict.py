"""Batch prediction on the real stack: real Temporal, real S3, tiny real models.

Two versions are trained from scratch once for the module (no pretrained weights exist
offline) and published through the real registry protocol. The truth every output is checked
against is Ultralytics' own ``predict`` on local copies of the same images with the same
weights file: COCO results, YOLO label files and Label Studio tasks (also validated against
Label Studio's documented import format) must say what it says, for the PyTorch backend on the
GPU queue and the ONNX Runtime backend on the CPU queue. A SIGKILLed worker mid-prediction
costs a batch or two, and every image is still predicted exactly once in the outputs.

One module over 300 lines on purpose: the four runs share the versions trained once by the
module fixture (about 20 s of training), and the output checks are shared by the runs.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.contracts.dataset import AssembleRequest, MinCounts, SplitRatios
from activities.contracts.predict import ImageSource, PredictOptions, PredictRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.label_studio import result_ids_unique, validate_tasks
from tests.helpers.polling import eventually
from tests.helpers.predict import TinyModel, bare_predictions, register, train_tiny
from tests.helpers.stack import REPO_ROOT, Queues, RunWorkers, WorkerProcess, sentinel_for
from workers.dev import synthetic
from workflows.predict import PredictWorkflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
CONF = 0.05
IMAGES = 20
HISTORIES = Path(__file__).resolve().parents[1] / "histories"


class Models:
    """The module's model name, its two versions' files, and the images to predict."""

    def __init__(self, name: str, v1: TinyModel, v2: TinyModel, prefix: str, local: Path):
        self.name, self.v1, self.v2, self.prefix, self.local = name, v1, v2, prefix, local

    def files(self, keys: list[str] | None = None) -> list[Path]:
        names = [k.rsplit("/", 1)[1] for k in keys] if keys else None
        return sorted(p for p in self.local.iterdir() if names is None or p.name in names)


@pytest.fixture(scope="module")
def models(
    settings: Settings, store: ObjectStore, tmp_path_factory: pytest.TempPathFactory
) -> Models:
    root = tmp_path_factory.mktemp("predict")
    name = f"pred-{uuid.uuid4().hex[:8]}"
    v1 = train_tiny(root / "v1", epochs=8)
    v2 = train_tiny(root / "v2", epochs=3, seed=22)
    assert register(store, settings, name, v1) == 1
    assert register(store, settings, name, v2) == 2
    prefix = f"datasets/{name}-new"
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=IMAGES, seed=77)
    local = root / "images"
    local.mkdir()
    for item in synthetic.generate(IMAGES, seed=77):
        (local / f"{item.stem}.png").write_bytes(item.png)
    return Models(name, v1, v2, prefix, local)


def read_json(store: ObjectStore, bucket: str, key: str) -> Any:
    return json.loads(store.get_bytes(bucket, key))


def truth_boxes(result: Any) -> list[tuple[int, float, np.ndarray]]:
    """(class, confidence, xyxy) of one Ultralytics result, most confident first."""
    boxes = result.boxes
    rows = [
        (int(c), float(p), xyxy)
        for c, p, xyxy in zip(
            boxes.cls.numpy(), boxes.conf.numpy(), boxes.xyxy.numpy(), strict=True
        )
    ]
    return sorted(rows, key=lambda row: (-row[1], row[2][0]))


def assert_same_boxes(ours: list[tuple[int, float, np.ndarray]], truth: Any, where: str) -> None:
    expected = truth_boxes(truth)
    ours = sorted(ours, key=lambda row: (-row[1], row[2][0]))
    assert len(ours) == len(expected), f"{where}: {len(ours)} boxes, Ultralytics {len(expected)}"
    for (c, p, box), (tc, tp, tbox) in zip(ours, expected, strict=True):
        assert c == tc and p == pytest.approx(tp, abs=2e-4), where
        assert np.allclose(box, tbox, atol=0.02), f"{where}: {box} vs {tbox}"


def xywh_to_xyxy(bbox: list[float]) -> np.ndarray:
    x, y, w, h = bbox
    return np.array([x, y, x + w, y + h])


def check_coco(store: ObjectStore, bucket: str, out: str, truth: dict[str, Any]) -> None:
    results = read_json(store, bucket, f"{out}/coco/results.json")
    ids = read_json(store, bucket, f"{out}/coco/images.json")
    by_id = {image["id"]: image for image in ids["images"]}
    assert [c["name"] for c in ids["categories"]] == list(synthetic.CLASS_NAMES)
    assert sorted(Path(i["file_name"]).name for i in ids["images"]) == sorted(truth)
    for image_id, image in by_id.items():
        ours = [
            (
                r["category_id"] - 1,
                r["score"],
                xywh_to_xyxy(r["bbox"]),
            )
            for r in results
            if r["image_id"] == image_id
        ]
        assert_same_boxes(ours, truth[Path(image["file_name"]).name], f"coco {image['file_name']}")


def check_yolo(store: ObjectStore, bucket: str, out: str, truth: dict[str, Any]) -> None:
    labels = {
        info.key.rsplit("/", 1)[1]: info.key
        for info in store.list(bucket, f"{out}/yolo/")
        if info.key.endswith(".txt") and not info.key.endswith("classes.txt")
    }
    assert sorted(labels) == sorted(Path(name).with_suffix(".txt").name for name in truth)
    for name, result in truth.items():
        height, width = result.orig_shape
        ours = []
        for line in (
            store.get_bytes(bucket, labels[Path(name).with_suffix(".txt").name])
            .decode()
            .splitlines()
        ):
            c, cx, cy, w, h, p = line.split()
            x, y, bw, bh = (
                float(cx) * width,
                float(cy) * height,
                float(w) * width,
                float(h) * height,
            )
            ours.append(
                (int(c), float(p), np.array([x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2]))
            )
        assert_same_boxes(ours, result, f"yolo {name}")


def label_studio_boxes(task: dict[str, Any], entry: int) -> list[tuple[int, float, np.ndarray]]:
    rows = []
    for region in task["predictions"][entry]["result"]:
        v, w, h = region["value"], region["original_width"], region["original_height"]
        x1, y1 = v["x"] * w / 100, v["y"] * h / 100
        box = np.array([x1, y1, x1 + v["width"] * w / 100, y1 + v["height"] * h / 100])
        rows.append((synthetic.CLASS_NAMES.index(v["rectanglelabels"][0]), region["score"], box))
    return rows


def check_label_studio(
    store: ObjectStore,
    bucket: str,
    out: str,
    model: str,
    truth: dict[str, Any],
    compare: dict[str, Any],
) -> list[dict[str, Any]]:
    tasks = read_json(store, bucket, f"{out}/labelstudio/tasks.json")
    validate_tasks(tasks)
    assert result_ids_unique(tasks)
    assert [t["data"]["rank"] for t in tasks] == list(range(1, len(truth) + 1))
    priorities = [t["data"]["priority"] for t in tasks]
    assert priorities == sorted(priorities, reverse=True), "tasks travel in rank order"
    assert sorted(Path(t["data"]["key"]).name for t in tasks) == sorted(truth)
    for task in tasks:
        name = Path(task["data"]["key"]).name
        assert task["data"]["image"] == f"s3://{bucket}/{task['data']['key']}"
        assert [p["model_version"] for p in task["predictions"]] == [f"{model} v1", f"{model} v2"]
        assert_same_boxes(label_studio_boxes(task, 0), truth[name], f"labelstudio {name}")
        assert_same_boxes(label_studio_boxes(task, 1), compare[name], f"labelstudio v2 {name}")
    return tasks


async def test_pytorch_run_with_a_compared_version_writes_every_format_as_ultralytics_predicts(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    models: Models,
    store: ObjectStore,
    settings: Settings,
) -> None:
    out = f"predictions/{models.name}-pt"
    bucket = settings.data_bucket
    async with run_workers():
        code, stdout, stderr = await sentinel_cli(
            queues,
            "predict",
            "start",
            "--model",
            models.name,
            "--alias",
            "production",
            "--compare-version",
            "1",
            "--version",
            "2",
            "--prefix",
            models.prefix,
            "--out",
            out,
            "--conf",
            str(CONF),
            "--batch",
            "4",
            "--shard-size",
            "7",
            "--parallel",
            "2",
            "--follow",
        )
        assert code == 2 and "not allowed with argument" in stderr, "version xor alias"
        code, stdout, stderr = await sentinel_cli(
            queues,
            "predict",
            "start",
            "--model",
            models.name,
            "--version",
            "1",
            "--compare-version",
            "2",
            "--prefix",
            models.prefix,
            "--out",
            out,
            "--conf",
            str(CONF),
            "--batch",
            "4",
            "--shard-size",
            "7",
            "--parallel",
            "2",
            "--follow",
        )
        assert code == 0, stderr
        sentinel = sentinel_for(client, queues)
        started = re.search(r"started (\S+)", stdout)
        assert started, stdout
        workflow_id = started.group(1)
        result = await sentinel.prediction_result(workflow_id)
        progress = await sentinel.prediction_progress(workflow_id)
        history = await sentinel.prediction_handle(workflow_id).fetch_history()
    # The run replays on the current code; recorded on request for later changes to replay.
    await Replayer(
        workflows=[PredictWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history)
    if os.environ.get("SENTINEL_RECORD_HISTORY"):
        (HISTORIES / "predict_pytorch_compared.json").write_text(history.to_json())
    assert "predictions" in stdout and "manifest" in stdout
    files = models.files()
    truth = bare_predictions(models.v1.pt, files, imgsz=96, conf=CONF)
    compare = bare_predictions(models.v2.pt, files, imgsz=96, conf=CONF)
    check_coco(store, bucket, out, truth)
    check_yolo(store, bucket, out, truth)
    tasks = check_label_studio(store, bucket, out, models.name, truth, compare)
    ranking = list(
        csv.DictReader(io.StringIO(store.get_bytes(bucket, f"{out}/ranking.csv").decode()))
    )
    assert [row["key"] for row in ranking] == [t["data"]["key"] for t in tasks]
    assert result.top_ranked == [row["key"] for row in ranking][:10]
    total = sum(len(r.boxes) for r in truth.values())
    summary = result.summary
    assert summary.images == IMAGES and summary.predictions == total and summary.unreadable == 0
    assert summary.predictions_per_class == {
        name: sum(int((r.boxes.cls == i).sum()) for r in truth.values())
        for i, name in enumerate(synthetic.CLASS_NAMES)
    }
    assert summary.task == "detect" and summary.images_per_second > 0
    assert summary.outputs["labelstudio"].records == IMAGES
    assert read_json(store, bucket, f"{out}/summary.json")["predictions"] == total
    manifest = read_json(store, bucket, result.manifest_key)
    assert result.shards == result.shards_predicted == 3 and len(manifest["shards"]) == 3
    seen: list[str] = []
    for shard in manifest["shards"]:
        assert store.stat(bucket, shard["output"]["key"]).sha256 == shard["output"]["sha256"]
        seen += [i["key"] for i in read_json(store, bucket, shard["output"]["key"])["images"]]
    assert sorted(seen) == sorted(f"{models.prefix}/images/{p.name}" for p in files)
    assert list(store.list(bucket, f"{out}/shards/parts/")) == [], "parts are removed"
    assert progress.stage == "succeeded" and progress.images_done == IMAGES
    assert (
        manifest["model"]["weights"]["sha256"]
        == store.stat(settings.models_bucket, f"models/{models.name}/v1/model.pt").sha256
    )


async def test_onnx_run_on_a_snapshot_split_runs_on_the_cpu_queue(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    models: Models,
    store: ObjectStore,
    settings: Settings,
) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.dataset import DatasetActivities

    assembled = ActivityEnvironment().run(
        DatasetActivities(settings, store).assemble_dataset,
        AssembleRequest(
            dataset=models.name,
            prefix=models.prefix,
            split_ratios=SplitRatios(train=0.5, val=0.25, test=0.25),
            min_counts=MinCounts(train=1, val=1, test=1),
        ),
    )
    snapshot = assembled.snapshot
    out = f"predictions/{models.name}-onnx"
    request = PredictRequest(
        model=models.name,
        source=ImageSource(snapshot=snapshot, split="val"),
        out=out,
        formats=["coco"],
        backend="onnx",
        options=PredictOptions(conf=CONF, batch=3),
    )
    sentinel = sentinel_for(client, queues)
    async with run_workers():
        workflow_id = await sentinel.start_prediction(request)
        result = await sentinel.prediction_result(workflow_id)
        history = await sentinel.prediction_handle(workflow_id).fetch_history()
    shard_queues = {
        event.activity_task_scheduled_event_attributes.task_queue.name
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == "predict_shard"
    }
    assert shard_queues == {queues.cpu}
    # v2 was registered without being compared to v1, so production stayed at v1.
    assert result.version == 1
    assert result.summary.images == snapshot.counts["val"]
    val_keys = [
        k["coco_url"].split("/", 3)[3]
        for k in read_json(store, settings.data_bucket, f"{out}/coco/images.json")["images"]
    ]
    onnx_truth = bare_predictions(models.v1.onnx, models.files(val_keys), imgsz=96, conf=CONF)
    assert len(onnx_truth) == snapshot.counts["val"]
    check_coco(store, settings.data_bucket, out, onnx_truth)
    written = {
        info.key.removeprefix(f"{out}/") for info in store.list(settings.data_bucket, f"{out}/")
    }
    assert not any(k.startswith(("yolo/", "labelstudio/")) for k in written), written


async def test_bad_input_fails_fast_and_writes_nothing(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    models: Models,
    store: ObjectStore,
    settings: Settings,
) -> None:
    sentinel = sentinel_for(client, queues)
    foreign = f"predictions/{models.name}-taken"
    store.put_bytes(settings.data_bucket, f"{foreign}/notes.txt", b"someone else's")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"version": 9, "out": f"predictions/{models.name}-none"}, "NotFoundError", "no version 9"),
        ({"out": foreign}, "BadInputError", "did not write"),
        ({"out": f"{models.prefix}/preds"}, "BadInputError", "overlaps the image prefix"),
        (
            {
                "source": ImageSource(prefix=f"datasets/{models.name}-nothing-here"),
                "out": f"predictions/{models.name}-e",
            },
            "BadInputError",
            "no images to predict on",
        ),
    ]
    async with run_workers():
        for fields, kind, message in cases:
            fields = {"source": ImageSource(prefix=models.prefix), **fields}
            request = PredictRequest(model=models.name, **fields)
            workflow_id = await sentinel.start_prediction(request)
            with pytest.raises(WorkflowFailureError) as failure:
                await sentinel.prediction_result(workflow_id)
            cause = failure.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == kind, cause
            assert message in cause.message and cause.non_retryable
            if fields.get("out") != foreign:
                assert list(store.list(settings.data_bucket, f"{request.out}/")) == []


async def test_sigkill_mid_prediction_every_image_exactly_once(
    client: Client,
    queues: Queues,
    worker_process: Callable[..., WorkerProcess],
    models: Models,
    store: ObjectStore,
    settings: Settings,
) -> None:
    """Kill the only worker once a batch is stored; the retry resumes from the stored batches."""
    out = f"predictions/{models.name}-kill"
    bucket = settings.data_bucket
    request = PredictRequest(
        model=models.name,
        version=1,
        source=ImageSource(prefix=models.prefix),
        out=out,
        formats=["coco", "yolo", "labelstudio"],
        options=PredictOptions(conf=CONF, imgsz=640, batch=2),  # 640: slow enough to kill
        shard_size=10,
        parallel_shards=2,
        shard_heartbeat_timeout_seconds=5,
    )
    sentinel = sentinel_for(client, queues)
    first = worker_process("cpu,gpu")
    workflow_id = await sentinel.start_prediction(request)

    async def a_batch_stored() -> bool:
        return any(True for _ in store.list(bucket, f"{out}/shards/parts/"))

    await eventually(a_batch_stored, timeout=180, interval=0.05, message="a stored batch")
    first.kill()
    second = worker_process("cpu,gpu")
    result = await asyncio.wait_for(sentinel.prediction_result(workflow_id), 300)
    files = models.files()
    truth = bare_predictions(models.v1.pt, files, imgsz=640, conf=CONF)
    check_coco(store, bucket, out, truth)  # every image once, as Ultralytics predicts it
    check_yolo(store, bucket, out, truth)
    tasks = read_json(store, bucket, f"{out}/labelstudio/tasks.json")
    assert sorted(Path(t["data"]["key"]).name for t in tasks) == sorted(truth)
    manifest = read_json(store, bucket, result.manifest_key)
    assert sum(shard["resumed"] for shard in manifest["shards"]) > 0, "the retry resumed"
    assert result.summary.images == IMAGES
    repeated = images_predicted_twice(first.log() + second.log())
    print(f"\npredict_images_repeated={repeated} (batch 2, 2 shards in flight)")
    assert repeated <= 2 * 2 * 2, "at most the batches in flight (and being stored) per shard"


def images_predicted_twice(log: str) -> int:
    """Images of batches whose inference finished in more than one attempt (worker logs)."""
    seen: dict[tuple[str, int], list[int]] = {}
    for digest, batch, count in re.findall(
        r"predicted shard \d+ \((\w+)\) batch (\d+): (\d+) images", log
    ):
        seen.setdefault((digest, int(batch)), []).append(int(count))
    return sum(sum(counts[1:]) for counts in seen.values())


async def sentinel_cli(queues: Queues, *args: str) -> tuple[int, str, str]:
    """``python -m workflows.client.cli`` (the ``sentinel`` script) as a user runs it."""
    env = {
        **os.environ,
        "SENTINEL_CPU_TASK_QUEUE": queues.cpu,
        "SENTINEL_GPU_TASK_QUEUE": queues.gpu,
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workflows.client.cli",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()
