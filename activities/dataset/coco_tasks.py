"""COCO annotations of segment and pose -> YOLO label lines (then validated as any line).

* ``segment``: ``segmentation`` polygons (``[[x1, y1, x2, y2, ...], ...]`` in pixels) are
  normalised by the image size. An object in several parts becomes one outline: the parts in
  order, each closed and joined to the first part's first point by a zero-width bridge (as
  Ultralytics' own COCO converter joins them). An RLE mask (``segmentation`` as a dict, or
  ``iscrowd``) is not decoded: the annotation is dropped as ``rle_mask`` with that reason, so
  its image is left out (labels never lie) and the report says to export polygons.
* ``pose``: ``bbox`` and ``keypoints`` (``[x, y, v] * k`` in pixels) become
  ``cls cx cy w h x y v ...``; ``kpt_shape`` is ``[k, 3]`` with k the length of the
  categories' ``keypoints`` names, and ``flip_idx`` swaps names that differ only by
  ``left``/``right`` (COCO's convention).
* ``obb``: COCO has no rotated boxes; refused before reading (``assemble``).
"""

from __future__ import annotations

from typing import Any

from activities.dataset.tasks import TaskSpec

RLE = "rle_mask"


def flip_idx(names: list[str]) -> tuple[int, ...]:
    """Each keypoint's mirror image: ``left_eye`` <-> ``right_eye``; others stay."""
    index = {name: i for i, name in enumerate(names)}
    mirrored = []
    for name in names:
        other = name.replace("left", "\0").replace("right", "left").replace("\0", "right")
        mirrored.append(index.get(other, index[name]))
    return tuple(mirrored)


def pose_spec(names: list[str]) -> TaskSpec:
    """The pose spec of a COCO keypoints file whose categories name ``names``."""
    return TaskSpec("pose", (len(names), 3), flip_idx(names))


def _outline(parts: list[list[float]]) -> list[float]:
    if len(parts) == 1:
        return parts[0]
    anchor = parts[0][:2]
    merged: list[float] = []
    for part in parts:
        merged += [*part, *part[:2], *anchor]
    return merged


def segment_line(cls: int, shape: dict[str, Any], width: int, height: int) -> str | tuple[str, str]:
    """The YOLO line of a COCO segmentation, or ``(kind, why)`` when there is none."""
    seg = shape.get("segmentation")
    if isinstance(seg, dict):
        return RLE, "RLE mask not decoded: export the dataset with polygons"
    parts = [p for p in seg or [] if isinstance(p, list) and p]
    if not parts:
        return "polygon_too_few_points", "no segmentation polygon"
    try:
        values = [float(v) for v in _outline(parts)]
    except (TypeError, ValueError):
        return "malformed_value", "segmentation values are not numbers"
    scaled = [v / (width if i % 2 == 0 else height) for i, v in enumerate(values)]
    return f"{cls} " + " ".join(f"{v:.6f}" for v in scaled)


def pose_line(
    cls: int, bbox: Any, shape: dict[str, Any], width: int, height: int
) -> str | tuple[str, str]:
    """The YOLO line of a COCO keypoints annotation, or ``(kind, why)``."""
    kpts = shape.get("keypoints")
    if not isinstance(bbox, list) or len(bbox) != 4 or not isinstance(kpts, list):
        return "wrong_field_count", "needs a 4-number bbox and a keypoints list"
    try:
        x, y, w, h = (float(v) for v in bbox)
        points = [float(v) for v in kpts]
    except (TypeError, ValueError):
        return "malformed_value", "bbox or keypoints values are not numbers"
    box = [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]
    values = []
    for i, v in enumerate(points):
        values.append(v / width if i % 3 == 0 else v / height if i % 3 == 1 else v)
    return f"{cls} " + " ".join(f"{v:.6f}" for v in [*box, *values])
