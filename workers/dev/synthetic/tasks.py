"""Synthetic datasets for every task: the shapes of :mod:`.images`, annotated per task.

* ``segment``: the detection images, each shape's polygon (a 16-point ellipse for circles,
  four corners for squares, three for triangles);
* ``pose``: the detection images, each shape with four keypoints at the corners of its box
  (``kpt_shape: [4, 3]``, ``flip_idx: [1, 0, 3, 2]`` in ``data.yaml``);
* ``obb``: the shapes drawn inside rotated rectangles (long side 0.85, short side 0.5 of the
  placement square), labelled with the rectangle's four corners;
* ``classify``: one large shape per image, stored as ``{class}/{stem}.png`` (or
  ``{split}/{class}/`` in the Roboflow layout).

Deterministic as the detection set: image ``i`` of seed ``s`` depends only on ``(s, i, size)``.
Just over 300 lines: the drawing, the labels and the four layouts of the tasks read together.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from activities.contracts.tasks import Task
from activities.infra.storage import ObjectStore
from workers.dev.synthetic.images import (
    CLASS_COLORS,
    CLASS_NAMES,
    Box,
    Layout,
    SyntheticImage,
    _place_boxes,
    _png,
    data_yaml,
    generate,
    stem_for,
)
from workers.dev.synthetic.layouts import (
    UploadSummary,
    _join,
    _put_all,
    _read_optional,
    roboflow_split,
    upload,
    write_layout,
)

KPT_SHAPE = (4, 3)
FLIP_IDX = (1, 0, 3, 2)  # top-left <-> top-right, bottom-right <-> bottom-left
_TAGS = {"obb": 1, "classify": 2}  # extra seed words: these images differ from detection's


def _norm(points: Sequence[tuple[float, float]], size: int) -> str:
    return " ".join(f"{min(max(x / size, 0.0), 1.0):.6f} {min(max(y / size, 0.0), 1.0):.6f}"
                    for x, y in points)  # fmt: skip


def shape_polygon(box: Box) -> list[tuple[float, float]]:
    """The outline of ``box``'s shape in pixels (as :func:`.images._draw` drew it)."""
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    name = CLASS_NAMES[box.cls]
    if name == "square":
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if name == "triangle":
        return [(x0 + (x1 - x0) / 2, y0), (x1, y1), (x0, y1)]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return [
        (cx + rx * math.cos(2 * math.pi * k / 16), cy + ry * math.sin(2 * math.pi * k / 16))
        for k in range(16)
    ]


def _segment(image: SyntheticImage) -> SyntheticImage:
    lines = [f"{b.cls} {_norm(shape_polygon(b), image.size)}" for b in image.boxes]
    return dataclasses.replace(image, labels=lines)


def _pose(image: SyntheticImage) -> SyntheticImage:
    lines = []
    for box in image.boxes:
        corners = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)]
        xy = _norm(corners, image.size).split()
        kpts = " ".join(f"{xy[i]} {xy[i + 1]} 2" for i in range(0, len(xy), 2))
        lines.append(f"{box.yolo_line(image.size)} {kpts}")
    return dataclasses.replace(image, labels=lines)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(70, 170)
    tint = rng.integers(-15, 16, size=3)
    noise = rng.normal(0.0, 14.0, size=(size, size, 3))
    return Image.fromarray(np.clip(base + tint + noise, 0, 255).astype(np.uint8), "RGB")


def _colour(rng: np.random.Generator, cls: int) -> tuple[int, ...]:
    jitter = rng.integers(-20, 21, size=3)
    return tuple(int(c) for c in np.clip(np.array(CLASS_COLORS[cls]) + jitter, 0, 255))


def _rotated(
    cx: float, cy: float, theta: float, points: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    c, s = math.cos(theta), math.sin(theta)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _obb_image(index: int, seed: int, size: int) -> SyntheticImage:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, size, _TAGS["obb"]]))
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    lines = []
    for cls, x0, y0, side, _ in _place_boxes(rng, size):
        theta = float(rng.uniform(0, math.pi))
        long, short = 0.85 * side / 2, 0.5 * side / 2
        cx, cy = x0 + side / 2, y0 + side / 2
        rect = [(-long, -short), (long, -short), (long, short), (-long, short)]
        if CLASS_NAMES[cls] == "square":
            outline = rect
        elif CLASS_NAMES[cls] == "triangle":
            outline = [(-long, short), (long, short), (0.0, -short)]
        else:
            outline = [
                (long * math.cos(2 * math.pi * k / 24), short * math.sin(2 * math.pi * k / 24))
                for k in range(24)
            ]
        draw.polygon(_rotated(cx, cy, theta, outline), fill=_colour(rng, cls))
        lines.append(f"{cls} {_norm(_rotated(cx, cy, theta, rect), size)}")
    return SyntheticImage(stem_for(seed, index), _png(image), lines, index, size)


def _classify_image(index: int, seed: int, size: int) -> SyntheticImage:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, size, _TAGS["classify"]]))
    image = _background(rng, size)
    cls = int(rng.integers(len(CLASS_NAMES)))
    side = int(rng.integers(int(size * 0.4), int(size * 0.7)))
    x0, y0 = int(rng.integers(1, size - side)), int(rng.integers(1, size - side))
    box = Box(cls, x0, y0, x0 + side, y0 + side)
    ImageDraw.Draw(image).polygon(shape_polygon(box), fill=_colour(rng, cls))
    return SyntheticImage(stem_for(seed, index), _png(image), [], index, size, (box,))


def generate_task(
    task: Task, count: int, *, seed: int = 0, start: int = 0, size: int = 96
) -> list[SyntheticImage]:
    """Images ``start .. start+count-1`` of ``seed`` annotated for ``task``."""
    indices = range(start, start + count)
    if task == "obb":
        return [_obb_image(i, seed, size) for i in indices]
    if task == "classify":
        return [_classify_image(i, seed, size) for i in indices]
    images = generate(count, seed=seed, start=start, size=size)
    if task == "segment":
        return [_segment(img) for img in images]
    if task == "pose":
        return [_pose(img) for img in images]
    return images


def task_yaml(task: Task, **extra: object) -> bytes:
    """``data.yaml`` of a task's dataset (pose: ``kpt_shape`` and ``flip_idx``)."""
    if task == "pose":
        extra = {**extra, "kpt_shape": list(KPT_SHAPE), "flip_idx": list(FLIP_IDX)}
    return data_yaml(**extra)


def upload_task(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    *,
    task: Task,
    count: int,
    seed: int = 0,
    start: int = 0,
    size: int = 96,
    layout: Layout = "yolo",
) -> UploadSummary:
    """Write a ``task`` dataset under ``prefix`` (``yolo`` with ``verified.jsonl``,
    ``roboflow``, or ``coco`` for segment and pose); ``detect`` is :func:`.layouts.upload`."""
    prefix = prefix.strip("/")
    if task == "detect":
        verified = True if layout == "yolo" else None
        return upload(store, bucket, prefix, layout=layout, count=count, seed=seed,
                      start=start, size=size, verified=verified)  # fmt: skip
    images = generate_task(task, count, seed=seed, start=start, size=size)
    if task == "classify":
        return _upload_classify(store, bucket, prefix, images, seed, start, layout)
    if layout == "coco":
        return _upload_coco(store, bucket, prefix, images, task, seed, start)
    if layout == "roboflow":
        summary = write_layout(store, bucket, prefix, layout="roboflow", images=images,
                               seed=seed, start=start, verified=None)  # fmt: skip
        extra: dict[str, object] = {"train": "../train/images", "val": "../valid/images",
                                    "test": "../test/images"}  # fmt: skip
    else:
        summary = write_layout(store, bucket, prefix, layout="yolo", images=images,
                               seed=seed, start=start, verified=True)  # fmt: skip
        extra = {}
    key = _join(prefix, "data.yaml")
    _put_all(store, bucket, [(key, task_yaml(task, **extra), "application/x-yaml")])
    return dataclasses.replace(summary, objects=sum(len(img.labels) for img in images))


def _upload_classify(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    images: Sequence[SyntheticImage],
    seed: int,
    start: int,
    layout: str,
) -> UploadSummary:
    items: list[tuple[str, bytes, str]] = []
    rels = []
    for img in images:
        folder = CLASS_NAMES[img.boxes[0].cls]
        split = roboflow_split(img.index)
        rel = (
            f"{split}/{folder}/{img.stem}.png"
            if layout == "roboflow"
            else f"{folder}/{img.stem}.png"
        )
        rels.append(rel)
        items.append((_join(prefix, rel), img.png, "image/png"))
    if layout != "roboflow":
        key = _join(prefix, "verified.jsonl")
        old = (_read_optional(store, bucket, key) or b"").decode().splitlines()
        present = {json.loads(line)["image"] for line in old if line.strip()}
        new = [json.dumps({"image": rel}) for rel in rels if rel not in present]
        body = "".join(f"{line}\n" for line in [*old, *new] if line.strip()).encode()
        items.append((key, body, "application/x-ndjson"))
    items.append((_join(prefix, "data.yaml"), data_yaml(), "application/x-yaml"))
    _put_all(store, bucket, items)
    return UploadSummary(
        layout="roboflow" if layout == "roboflow" else "yolo",
        bucket=bucket,
        prefix=prefix,
        seed=seed,
        start=start,
        count=len(images),
        objects=len(images),
        keys=tuple(key for key, _, _ in items),
    )


KEYPOINT_NAMES = ("top_left", "top_right", "bottom_right", "bottom_left")


def _coco_annotation(task: Task, box: Box, number: int, image_id: int) -> dict[str, Any]:
    w, h = box.x1 - box.x0, box.y1 - box.y0
    ann: dict[str, Any] = {
        "id": number,
        "image_id": image_id,
        "category_id": box.cls + 1,
        "bbox": [box.x0, box.y0, w, h],
        "area": w * h,
        "iscrowd": 0,
    }
    if task == "segment":
        ann["segmentation"] = [[v for point in shape_polygon(box) for v in point]]
    else:
        corners = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)]
        ann["keypoints"] = [v for x, y in corners for v in (x, y, 2)]
        ann["num_keypoints"] = 4
    return ann


def _upload_coco(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    images: Sequence[SyntheticImage],
    task: Task,
    seed: int,
    start: int,
) -> UploadSummary:
    """Images and one ``annotations.json`` with polygons (segment) or keypoints (pose)."""
    if task not in ("segment", "pose"):
        raise ValueError(f"COCO has no {task} annotations")
    categories: list[dict[str, Any]] = [
        {"id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)
    ]
    if task == "pose":
        for category in categories:
            category["keypoints"] = list(KEYPOINT_NAMES)
    entries: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, img in enumerate(images, start=start + 1):
        name = f"images/{img.stem}.png"
        entries.append({"id": image_id, "file_name": name, "width": img.size,
                        "height": img.size})  # fmt: skip
        for box in img.boxes:
            annotations.append(_coco_annotation(task, box, len(annotations) + 1, image_id))
    doc = {"images": entries, "annotations": annotations, "categories": categories}
    items = [(_join(prefix, f"images/{img.stem}.png"), img.png, "image/png") for img in images]
    items.append((_join(prefix, "annotations.json"), json.dumps(doc).encode(), "application/json"))
    _put_all(store, bucket, items)
    return UploadSummary(
        layout="coco", bucket=bucket, prefix=prefix, seed=seed, start=start, count=len(images),
        objects=len(annotations), keys=tuple(key for key, _, _ in items),
    )  # fmt: skip
