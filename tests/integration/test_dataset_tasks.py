"""Assembly and materialization of every task's layouts against the real S3 server.

YOLO and Roboflow layouts of segment, pose and OBB, and classification folders (``{class}/``
and Roboflow's ``{split}/{class}/``): the manifest records the task (and pose's ``kpt_shape``),
the materialized directory is what Ultralytics reads, and an image with a broken annotation of
any task is left out (labels never lie).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import AssembleRequest, AssembleResult, MinCounts
from activities.dataset import DatasetActivities, load_manifest, materialize_snapshot
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev.synthetic import generate_one
from workers.dev.synthetic.tasks import generate_task, upload_task

NO_MINIMUM = MinCounts(train=0, val=0, test=0)


def _assemble(
    settings: Settings, store: ObjectStore, prefix: str, **fields: object
) -> AssembleResult:
    request = AssembleRequest(
        dataset=f"ds-{uuid.uuid4().hex[:8]}",
        prefix=prefix,
        min_counts=NO_MINIMUM,
        **fields,  # type: ignore[arg-type]
    )
    return ActivityEnvironment().run(DatasetActivities(settings, store).assemble_dataset, request)


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
@pytest.mark.parametrize("layout", ["yolo", "roboflow"])
def test_yolo_and_roboflow_layouts_of_each_task(
    task: str, layout: str, settings: Settings, store: ObjectStore
) -> None:
    prefix = f"datasets/{task}-{uuid.uuid4().hex[:6]}"
    upload_task(store, settings.data_bucket, prefix, task=task, count=10, size=64, layout=layout)  # type: ignore[arg-type]
    result = _assemble(settings, store, prefix, task=task, format=layout)
    assert result.snapshot.task == task and sum(result.counts.values()) == 10
    manifest = load_manifest(store, result.snapshot)
    expected = {f"{img.stem}.png": img.labels for img in generate_task(task, 10, size=64)}  # type: ignore[arg-type]
    assert {Path(i.key).name: i.labels for i in manifest.images} == expected
    with materialize_snapshot(store, settings, result.snapshot) as dataset:
        data = yaml.safe_load(dataset.data_yaml.read_text())
        labels = sorted((dataset.root / "labels").rglob("*.txt"))
        assert len(labels) == 10
    if task == "pose":
        assert result.snapshot.kpt_shape == [4, 3] and manifest.flip_idx == [1, 0, 3, 2]
        assert data["kpt_shape"] == [4, 3] and data["flip_idx"] == [1, 0, 3, 2]
    else:
        assert "kpt_shape" not in data and result.snapshot.kpt_shape is None


@pytest.mark.parametrize("layout", ["yolo", "roboflow"])
def test_classification_folders(layout: str, settings: Settings, store: ObjectStore) -> None:
    prefix = f"datasets/cls-{uuid.uuid4().hex[:6]}"
    upload_task(
        store, settings.data_bucket, prefix, task="classify", count=10, size=64, layout=layout
    )
    # The same picture filed under two classes: neither copy is trusted (in the YOLO layout
    # the verified list does not name them, so they are left out as unverified first).
    twice = generate_one(50, size=64).png
    store.put_bytes(settings.data_bucket, f"{prefix}/circle/twice.png", twice)
    store.put_bytes(settings.data_bucket, f"{prefix}/square/twice.png", twice)
    result = _assemble(settings, store, prefix, task="classify", format="yolo", verified_key=None)
    assert result.snapshot.task == "classify"
    assert result.class_names == ["circle", "square", "triangle"]
    assert result.report["image_in_two_class_folders"] == (2 if layout == "roboflow" else 0)
    with materialize_snapshot(store, settings, result.snapshot) as dataset:
        assert dataset.data_yaml == dataset.root  # Ultralytics takes the folder itself
        files = sorted(p.relative_to(dataset.root) for p in dataset.root.rglob("*.png"))
    images = generate_task("classify", 10, size=64)
    assert len(files) == 10
    for image in images:  # each image in its class's folder
        (found,) = [f for f in files if f.name.startswith(image.stem)]
        assert found.parts[1] == ("circle", "square", "triangle")[image.boxes[0].cls]


def test_a_broken_annotation_of_any_task_leaves_the_image_out(
    settings: Settings, store: ObjectStore
) -> None:
    prefix = f"datasets/seg-{uuid.uuid4().hex[:6]}"
    upload_task(store, settings.data_bucket, prefix, task="segment", count=6, size=64)
    broken = generate_task("segment", 1, start=0, size=64)[0]
    key = f"{prefix}/labels/{broken.stem}.txt"
    store.put_bytes(settings.data_bucket, key, (broken.label_text + "0 0.1 0.1 0.2 0.2\n").encode())
    result = _assemble(settings, store, prefix, task="segment")
    assert sum(result.counts.values()) == 5
    assert result.report["polygon_too_few_points"] == 1
    assert result.report["image_with_bad_labels"] == 1
    keys = {i.key for i in load_manifest(store, result.snapshot).images}
    assert f"{prefix}/images/{broken.stem}.png" not in keys


@pytest.mark.parametrize("task", ["segment", "pose"])
def test_coco_polygons_and_keypoints(task: str, settings: Settings, store: ObjectStore) -> None:
    prefix = f"datasets/coco-{task}-{uuid.uuid4().hex[:6]}"
    upload_task(store, settings.data_bucket, prefix, task=task, count=8, size=64, layout="coco")  # type: ignore[arg-type]
    result = _assemble(settings, store, prefix, task=task, format="coco")
    manifest = load_manifest(store, result.snapshot)
    # The same objects as the YOLO labels of the same synthetic images (to 6 decimals).
    expected = {f"{img.stem}.png": img.labels for img in generate_task(task, 8, size=64)}  # type: ignore[arg-type]
    got = {Path(i.key).name: i.labels for i in manifest.images}
    assert set(got) == set(expected)
    for name, lines in got.items():
        for line, want in zip(lines, expected[name], strict=True):
            values, wanted = [float(v) for v in line.split()], [float(v) for v in want.split()]
            assert values == pytest.approx(wanted, abs=2e-6)
    if task == "pose":  # kpt_shape from the categories' keypoint names, left/right mirrored
        assert result.snapshot.kpt_shape == [4, 3] and manifest.flip_idx == [1, 0, 3, 2]


def test_coco_rle_masks_are_refused_by_name(settings: Settings, store: ObjectStore) -> None:
    prefix = f"datasets/coco-rle-{uuid.uuid4().hex[:6]}"
    upload_task(
        store, settings.data_bucket, prefix, task="segment", count=4, size=64, layout="coco"
    )
    key = f"{prefix}/annotations.json"
    doc = json.loads(store.get_bytes(settings.data_bucket, key))
    doc["annotations"][0]["segmentation"] = {"size": [64, 64], "counts": "PPYo1"}
    store.put_bytes(settings.data_bucket, key, json.dumps(doc).encode())
    result = _assemble(settings, store, prefix, task="segment", format="coco")
    assert result.report["rle_mask"] == 1 and result.report["image_with_bad_labels"] == 1
    assert sum(result.counts.values()) == 3
    manifest = load_manifest(store, result.snapshot)
    assert "RLE mask not decoded" in " ".join(manifest.report.examples["rle_mask"])


def test_data_validate_of_a_task_counts_its_objects(settings: Settings, store: ObjectStore) -> None:
    prefix = f"datasets/val-pose-{uuid.uuid4().hex[:6]}"
    upload_task(store, settings.data_bucket, prefix, task="pose", count=6, size=64)
    request = AssembleRequest(dataset="poses", prefix=prefix, task="pose", min_counts=NO_MINIMUM)
    found = ActivityEnvironment().run(DatasetActivities(settings, store).validate_dataset, request)
    assert found.can_train and found.usable == 6 and not found.findings
    objects = sum(len(img.labels) for img in generate_task("pose", 6, size=64))
    assert sum(n for split in found.class_counts.values() for n in split.values()) == objects
