"""Synthetic datasets written to the real S3 server in YOLO, COCO and Roboflow layouts."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev.synthetic import CLASS_NAMES, generate, upload


def _prefix(name: str) -> str:
    return f"datasets/test-synthetic-{name}-{uuid.uuid4().hex[:8]}"


def _keys(store: ObjectStore, bucket: str, prefix: str) -> set[str]:
    return {info.key[len(prefix) + 1 :] for info in store.list(bucket, prefix + "/")}


def test_yolo_layout_grows_and_extends_verified_list(
    store: ObjectStore, settings: Settings
) -> None:
    bucket, prefix = settings.data_bucket, _prefix("yolo")
    first = upload(store, bucket, prefix, layout="yolo", count=4, seed=2, verified=True)
    second = upload(store, bucket, prefix, layout="yolo", count=3, seed=2, start=4, verified=True)
    upload(store, bucket, prefix, layout="yolo", count=2, seed=2, start=7)  # unverified
    assert (first.count, second.count, second.start) == (4, 3, 4)

    images = generate(9, seed=2)
    expected = {"data.yaml", "verified.jsonl"}
    expected |= {f"images/{i.stem}.png" for i in images} | {f"labels/{i.stem}.txt" for i in images}
    assert _keys(store, bucket, prefix) == expected
    for item in images:
        assert store.get_bytes(bucket, f"{prefix}/images/{item.stem}.png") == item.png
        label = store.get_bytes(bucket, f"{prefix}/labels/{item.stem}.txt").decode()
        assert label == item.label_text
    doc = yaml.safe_load(store.get_bytes(bucket, f"{prefix}/data.yaml"))
    assert doc["names"] == list(CLASS_NAMES)

    lines = store.get_bytes(bucket, f"{prefix}/verified.jsonl").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"image": f"images/{i.stem}.png"} for i in images[:7]
    ]
    # Re-uploading the same indices is idempotent.
    upload(store, bucket, prefix, layout="yolo", count=2, seed=2, start=2, verified=True)
    again = store.get_bytes(bucket, f"{prefix}/verified.jsonl").decode().splitlines()
    assert again == lines


def test_coco_layout_merges_annotations(store: ObjectStore, settings: Settings) -> None:
    bucket, prefix = settings.data_bucket, _prefix("coco")
    upload(store, bucket, prefix, layout="coco", count=3, seed=4, verified=True)
    summary = upload(store, bucket, prefix, layout="coco", count=2, seed=4, start=3, verified=False)
    assert summary.image_keys == tuple(
        f"{prefix}/images/{i.stem}.png" for i in generate(2, seed=4, start=3)
    )

    images = generate(5, seed=4)
    assert _keys(store, bucket, prefix) == {"annotations.json"} | {
        f"images/{i.stem}.png" for i in images
    }
    doc = json.loads(store.get_bytes(bucket, f"{prefix}/annotations.json"))
    assert doc["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]
    by_name = {im["file_name"]: im for im in doc["images"]}
    assert list(by_name) == [f"images/{i.stem}.png" for i in images]
    assert len({im["id"] for im in doc["images"]}) == 5
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    for index, item in enumerate(images):
        entry = by_name[f"images/{item.stem}.png"]
        assert (entry["width"], entry["height"]) == (item.size, item.size)
        assert entry["verified"] is (index < 3)
        anns = [a for a in doc["annotations"] if a["image_id"] == entry["id"]]
        assert [a["bbox"] for a in anns] == [
            [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0] for b in item.boxes
        ]
        assert [a["category_id"] for a in anns] == [b.cls + 1 for b in item.boxes]
        assert {a["verified"] for a in anns} == {index < 3}
    # Re-uploading keeps ids and does not duplicate annotations.
    upload(store, bucket, prefix, layout="coco", count=1, seed=4, start=1, verified=True)
    again = json.loads(store.get_bytes(bucket, f"{prefix}/annotations.json"))
    assert [im["id"] for im in again["images"]] == [im["id"] for im in doc["images"]]
    assert len(again["annotations"]) == len(doc["annotations"])


def test_coco_without_verification_has_no_flags(store: ObjectStore, settings: Settings) -> None:
    bucket, prefix = settings.data_bucket, _prefix("coco-plain")
    upload(store, bucket, prefix, layout="coco", count=2, seed=1)
    doc = json.loads(store.get_bytes(bucket, f"{prefix}/annotations.json"))
    assert all("verified" not in item for item in doc["images"] + doc["annotations"])


def test_roboflow_layout_splits_by_index(store: ObjectStore, settings: Settings) -> None:
    bucket, prefix = settings.data_bucket, _prefix("roboflow")
    upload(store, bucket, prefix, layout="roboflow", count=20, seed=3)
    doc = yaml.safe_load(store.get_bytes(bucket, f"{prefix}/data.yaml"))
    assert (doc["train"], doc["val"], doc["test"]) == (
        "../train/images",
        "../valid/images",
        "../test/images",
    )
    assert doc["names"] == list(CLASS_NAMES) and doc["nc"] == len(CLASS_NAMES)
    keys = _keys(store, bucket, prefix)
    for split, expected in (("train", 16), ("valid", 2), ("test", 2)):
        pngs = {k for k in keys if k.startswith(f"{split}/images/")}
        txts = {k for k in keys if k.startswith(f"{split}/labels/")}
        assert len(pngs) == len(txts) == expected
    item = generate(1, seed=3, start=9)[0]
    assert store.get_bytes(bucket, f"{prefix}/test/images/{item.stem}.png") == item.png
    with pytest.raises(ValueError):
        upload(store, bucket, prefix, layout="roboflow", count=1, verified=True)
