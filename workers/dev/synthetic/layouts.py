"""Object-storage layouts of the synthetic dataset (YOLO, COCO, Roboflow export).

:func:`upload` generates images and writes them under a prefix in one layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from activities.infra.errors import NotFoundError
from activities.infra.storage import ObjectStore
from workers.dev.synthetic.images import (
    CLASS_NAMES,
    Layout,
    SyntheticImage,
    data_yaml,
    generate,
)

ROBOFLOW_SPLITS = ("train", "valid", "test")
_PNG, _TEXT, _JSON, _YAML = "image/png", "text/plain", "application/json", "application/x-yaml"


@dataclass(frozen=True)
class UploadSummary:
    """What :func:`upload` wrote: layout, where, which indices and every key written."""

    layout: Layout
    bucket: str
    prefix: str
    seed: int
    start: int
    count: int
    objects: int
    keys: tuple[str, ...]

    @property
    def image_keys(self) -> tuple[str, ...]:
        """The keys of the images written (``.png``)."""
        return tuple(k for k in self.keys if k.endswith(".png"))


def upload(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    *,
    layout: Layout,
    count: int,
    seed: int = 0,
    start: int = 0,
    verified: bool | None = None,
    size: int = 96,
) -> UploadSummary:
    """Generate images ``start .. start+count-1`` of ``seed`` and write them under ``prefix``.

    Layouts (keys relative to ``prefix``):

    * ``yolo``: ``images/{stem}.png``, ``labels/{stem}.txt``, ``data.yaml``; ``verified=True``
      appends ``{"image": "images/{stem}.png"}`` lines to ``verified.jsonl``.
    * ``coco``: ``images/{stem}.png`` and one ``annotations.json`` (``file_name`` relative to
      ``prefix``; category ids from 1; ``verified`` flags on images and annotations unless None).
    * ``roboflow``: ``data.yaml`` (``train: ../train/images`` ...) and
      ``{train,valid,test}/{images,labels}/``; split by index (8 train, 1 valid, 1 test per 10).

    Growing (``start > 0``) extends ``verified.jsonl`` / ``annotations.json``; re-uploading the
    same indices is idempotent.
    """
    return write_layout(
        store,
        bucket,
        prefix.strip("/"),
        layout=layout,
        images=generate(count, seed=seed, start=start, size=size),
        seed=seed,
        start=start,
        verified=verified,
    )


def roboflow_split(index: int) -> str:
    """Split folder of image ``index``: 8 in 10 ``train``, then one ``valid``, one ``test``."""
    return {8: "valid", 9: "test"}.get(index % 10, "train")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def _read_optional(store: ObjectStore, bucket: str, key: str) -> bytes | None:
    try:
        return store.get_bytes(bucket, key)
    except NotFoundError:
        return None


def _put_all(store: ObjectStore, bucket: str, items: Sequence[tuple[str, bytes, str]]) -> None:
    workers = max(1, min(8, store.max_workers, len(items)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [
            pool.submit(store.put_bytes, bucket, key, data, content_type=ctype)
            for key, data, ctype in items
        ]:
            future.result()


def _yolo(prefix: str, images: Sequence[SyntheticImage]) -> list[tuple[str, bytes, str]]:
    items = [(_join(prefix, "data.yaml"), data_yaml(), _YAML)]
    for img in images:
        items.append((_join(prefix, f"images/{img.stem}.png"), img.png, _PNG))
        items.append((_join(prefix, f"labels/{img.stem}.txt"), img.label_text.encode(), _TEXT))
    return items


def _verified_jsonl(existing: bytes | None, images: Sequence[SyntheticImage]) -> bytes:
    lines = [line for line in (existing or b"").decode().splitlines() if line.strip()]
    present = {json.loads(line).get("image") for line in lines}
    for img in images:
        rel = f"images/{img.stem}.png"
        if rel not in present:
            lines.append(json.dumps({"image": rel}))
            present.add(rel)
    return "".join(f"{line}\n" for line in lines).encode()


def _coco(existing: bytes | None, images: Sequence[SyntheticImage], verified: bool | None) -> bytes:
    doc = json.loads(existing) if existing else {}
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)]
    old_images: list[dict[str, Any]] = doc.get("images", [])
    old_annotations: list[dict[str, Any]] = doc.get("annotations", [])
    new_names = {f"images/{img.stem}.png" for img in images}
    ids = {im["file_name"]: im["id"] for im in old_images}  # re-uploads keep their image id
    replaced = {im["id"] for im in old_images if im["file_name"] in new_names}
    out_images = [im for im in old_images if im["id"] not in replaced]
    out_annotations = [a for a in old_annotations if a["image_id"] not in replaced]
    next_image = max((im["id"] for im in old_images), default=0) + 1
    next_ann = max((a["id"] for a in old_annotations), default=0) + 1
    for img in images:
        name = f"images/{img.stem}.png"
        image_id = ids.get(name)
        if image_id is None:
            image_id, next_image = next_image, next_image + 1
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": name,
            "width": img.size,
            "height": img.size,
        }
        if verified is not None:
            entry["verified"] = verified
        out_images.append(entry)
        for box in img.boxes:
            w, h = box.x1 - box.x0, box.y1 - box.y0
            ann: dict[str, Any] = {
                "id": next_ann,
                "image_id": image_id,
                "category_id": box.cls + 1,
                "bbox": [box.x0, box.y0, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if verified is not None:
                ann["verified"] = verified
            out_annotations.append(ann)
            next_ann += 1
    merged = {
        "info": doc.get("info", {"description": "Sentinel synthetic shapes"}),
        "images": sorted(out_images, key=lambda im: im["id"]),
        "annotations": sorted(out_annotations, key=lambda a: a["id"]),
        "categories": categories,
    }
    return json.dumps(merged, indent=1).encode()


def _roboflow(prefix: str, images: Sequence[SyntheticImage]) -> list[tuple[str, bytes, str]]:
    yaml_bytes = data_yaml(
        train="../train/images",
        val="../valid/images",
        test="../test/images",
        roboflow={"workspace": "sentinel", "project": "synthetic-shapes", "version": 1},
    )
    items = [(_join(prefix, "data.yaml"), yaml_bytes, _YAML)]
    for img in images:
        split = roboflow_split(img.index)
        items.append((_join(prefix, f"{split}/images/{img.stem}.png"), img.png, _PNG))
        label = img.label_text.encode()
        items.append((_join(prefix, f"{split}/labels/{img.stem}.txt"), label, _TEXT))
    return items


def write_layout(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    *,
    layout: Layout,
    images: Sequence[SyntheticImage],
    seed: int,
    start: int,
    verified: bool | None,
) -> UploadSummary:
    """Write ``images`` under ``prefix`` in ``layout`` (see :func:`upload`)."""
    if layout == "yolo":
        items = _yolo(prefix, images)
        if verified:
            key = _join(prefix, "verified.jsonl")
            old = _read_optional(store, bucket, key)
            items.append((key, _verified_jsonl(old, images), "application/x-ndjson"))
    elif layout == "coco":
        items = [(_join(prefix, f"images/{img.stem}.png"), img.png, _PNG) for img in images]
        key = _join(prefix, "annotations.json")
        old = _read_optional(store, bucket, key)
        items.append((key, _coco(old, images, verified), _JSON))
    elif layout == "roboflow":
        if verified is not None:
            raise ValueError("the roboflow layout has no verification flags: pass verified=None")
        items = _roboflow(prefix, images)
    else:
        raise ValueError(f"unknown layout {layout!r}: expected 'yolo', 'coco' or 'roboflow'")
    _put_all(store, bucket, items)
    return UploadSummary(
        layout=layout,
        bucket=bucket,
        prefix=prefix,
        seed=seed,
        start=start,
        count=len(images),
        objects=sum(len(img.boxes) for img in images),
        keys=tuple(key for key, _, _ in items),
    )
