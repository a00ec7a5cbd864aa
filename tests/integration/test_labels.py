"""Labels never lie to the model: assembly on the real S3 server with broken annotations.

An image with a dropped annotation has an object that would be unlabelled; by default it is
left out of the snapshot (reported with its lines), only genuinely label-less images are
backgrounds, and float noise over the border is clipped silently. The per-line policy
(``bad_labels="drop_lines"``) is the documented opt-out.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter

from PIL import Image
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import SPLITS, AssembleRequest, AssembleResult, MinCounts
from activities.dataset import DatasetActivities, load_manifest
from activities.dataset.manifest import Manifest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

GOOD = ("0 0.300000 0.300000 0.200000 0.200000", "1 0.700000 0.600000 0.300000 0.250000")
BAD = (
    "0 0.5 0.5 0.2",
    "1 0.5 zz 0.2 0.2",
    "5 0.5 0.5 0.2 0.2",
    "0 2.5 0.5 0.2 0.2",
    "1 0.5 0.5 0.0 0.2",
)
BAD_KINDS = (
    "wrong_field_count",
    "malformed_value",
    "class_out_of_range",
    "coords_absurd",
    "zero_area",
)
NOISE = "0 0.999995 0.500000 0.000020 0.200000"  # 5 decimals: right edge at 1.000005
SPLIT_RATIOS = {"train": 0.4, "val": 0.3, "test": 0.3}


def _png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (index * 7 % 256, index * 13 % 256, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def _broken_yolo_dataset(store: ObjectStore, bucket: str, prefix: str) -> dict[str, list[str]]:
    """40 images: every 3rd has one bad line among good ones, every 10th only a bad line,
    a few have an empty label file or none, the rest are good (some with float noise).

    Returns image key -> its label lines as uploaded (absent label file: no entry).
    """
    store.put_bytes(bucket, f"{prefix}/data.yaml", b"names: [a, b]\n")
    source: dict[str, list[str]] = {}
    for index in range(40):
        key = f"{prefix}/images/img{index:03d}.png"
        store.put_bytes(bucket, key, _png(index))
        if index in (7, 17):
            continue  # no label file: a genuine background
        lines = [] if index in (8, 28) else list(GOOD[: 1 + index % 2])
        if index % 10 == 0:
            lines = [BAD[index // 10 % len(BAD)]]
        elif index % 3 == 0:
            lines.insert(index % 2, BAD[index % len(BAD)])
        elif index % 4 == 1:
            lines.append(NOISE)
        store.put_bytes(bucket, f"{prefix}/labels/img{index:03d}.txt", "\n".join(lines).encode())
        source[key] = lines
    return source


def _assemble(
    settings: Settings, store: ObjectStore, prefix: str, **fields: object
) -> AssembleResult:
    request = AssembleRequest(
        dataset=f"labels-{uuid.uuid4().hex[:8]}",
        prefix=prefix,
        split_ratios=SPLIT_RATIOS,  # type: ignore[arg-type]
        min_counts=MinCounts(train=1, val=1, test=1),
        max_examples=100,
        **fields,  # type: ignore[arg-type]
    )
    return ActivityEnvironment().run(DatasetActivities(settings, store).assemble_dataset, request)


def _unlabelled_objects_per_split(
    manifest: Manifest, source: dict[str, list[str]]
) -> dict[str, int]:
    """Per split: annotated objects of kept images that have no box in the snapshot."""
    missing = dict.fromkeys(SPLITS, 0)
    for image in manifest.images:
        annotated = sum(1 for line in source.get(image.key, []) if line.strip())
        missing[image.split] += annotated - len(image.labels)
    return missing


def test_no_unlabelled_object_is_kept_in_any_split(settings: Settings, store: ObjectStore) -> None:
    prefix, bucket = f"datasets/labels-{uuid.uuid4().hex[:8]}", settings.data_bucket
    source = _broken_yolo_dataset(store, bucket, prefix)
    with_bad = {k for k, lines in source.items() if any(line in BAD for line in lines)}
    result = _assemble(settings, store, prefix)
    manifest = load_manifest(store, result.snapshot)
    kept = {image.key for image in manifest.images}

    assert all(result.counts[split] > 0 for split in SPLITS)
    assert _unlabelled_objects_per_split(manifest, source) == {"train": 0, "val": 0, "test": 0}
    assert kept.isdisjoint(with_bad) and len(kept) == 40 - len(with_bad)
    report = manifest.report
    assert report.counts["image_with_bad_labels"] == len(with_bad) == 16
    assert report.counts["kept_with_bad_labels"] == 0
    assert report.counts["coords_clipped"] == 0  # 1.000005 is float noise: clipped silently
    bad_lines = Counter(line for lines in source.values() for line in lines if line in BAD)
    assert {kind: report.counts[kind] for kind in BAD_KINDS} == {
        kind: bad_lines[line] for line, kind in zip(BAD, BAD_KINDS, strict=True)
    }
    # Reported as their own kind, with the dropped lines.
    assert (
        f"{prefix}/images/img003.png: 1 dropped: line 2 coords_absurd '0 2.5 0.5 0.2 0.2'"
        in report.examples["image_with_bad_labels"]
    )
    # Backgrounds: only the images without a label file or with an empty one.
    backgrounds = {image.key.rsplit("/", 1)[1] for image in manifest.images if not image.labels}
    assert backgrounds == {"img007.png", "img017.png", "img008.png", "img028.png"}
    assert report.counts["image_without_label"] == 4
    noisy = next(i for i in manifest.images if i.key.endswith("img001.png"))
    assert noisy.labels[-1] == "0 0.999993 0.500000 0.000015 0.200000"  # [0.999985, 1]


def test_per_line_policy_keeps_valid_boxes_and_says_so(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = f"datasets/labels-{uuid.uuid4().hex[:8]}", settings.data_bucket
    source = _broken_yolo_dataset(store, bucket, prefix)
    result = _assemble(settings, store, prefix, bad_labels="drop_lines")
    manifest = load_manifest(store, result.snapshot)
    partial = {k for k, lines in source.items() if len(lines) > 1 and set(lines) & set(BAD)}
    only_bad = {k for k, lines in source.items() if lines and set(lines) <= set(BAD)}
    kept = {image.key for image in manifest.images}
    assert partial <= kept and kept.isdisjoint(only_bad)  # nothing to keep: still left out
    assert manifest.report.counts["kept_with_bad_labels"] == len(partial) == 12
    assert manifest.report.counts["image_with_bad_labels"] == len(only_bad) == 4
    unlabelled = _unlabelled_objects_per_split(manifest, source)
    assert sum(unlabelled.values()) == len(partial)  # what the default policy prevents


def test_coco_crowd_and_undefined_categories_leave_the_image_out(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = f"datasets/labels-{uuid.uuid4().hex[:8]}", settings.data_bucket
    images, annotations = [], []
    for index in range(12):
        store.put_bytes(bucket, f"{prefix}/images/c{index:02d}.png", _png(index))
        images.append({"id": index, "file_name": f"c{index:02d}.png", "width": 32, "height": 32})
        box = {"image_id": index, "category_id": 1, "bbox": [4, 4, 10, 10]}
        annotations.append({**box, "id": 100 + index})
    annotations += [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 32], "iscrowd": 1},
        {"id": 2, "image_id": 2, "category_id": 99, "bbox": [4, 4, 10, 10]},
        {"id": 3, "image_id": 3, "category_id": 2, "bbox": [4, 4, 10, 10]},  # not selected
        {"id": 4, "image_id": 4, "category_id": 1, "bbox": [22.00016, 4, 10, 10]},  # noise
    ]
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "part"}, {"id": 2, "name": "tool"}],
    }
    store.put_bytes(bucket, f"{prefix}/annotations.json", json.dumps(doc).encode())
    result = _assemble(settings, store, prefix, format="coco", class_names=["part"])
    manifest = load_manifest(store, result.snapshot)
    labels = {image.key.rsplit("/", 1)[1]: image.labels for image in manifest.images}
    assert "c01.png" not in labels and "c02.png" not in labels
    assert len(labels["c03.png"]) == 1  # the 'tool' box is out of scope, not a lie
    assert len(labels["c04.png"]) == 2
    counts = manifest.report.counts
    assert (counts["crowd_annotation"], counts["class_out_of_range"]) == (1, 1)
    assert (counts["class_not_selected"], counts["image_with_bad_labels"]) == (1, 2)
    assert counts["coords_clipped"] == 0
