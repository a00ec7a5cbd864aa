"""The output formats, written from stored predictions (:mod:`.records`); pure functions.

* YOLO label files as Ultralytics ``save_txt(save_conf=True)`` writes them: normalised
  ``cls cx cy w h conf`` (detect), ``cls x1 y1 ... xn yn conf`` (segment),
  ``cls cx cy w h kx ky kv ... conf`` (pose; ``kv`` is 1.0 for models without visibility),
  ``cls x1 y1 ... x4 y4 conf`` (obb corners),
  ``conf name`` lines for the top classes (classify). An image without predictions gets an
  empty file: it was predicted, nothing was found.
* COCO results (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] in pixels, ``score``;
  ``segmentation`` polygons, ``keypoints`` [x, y, v...], and for OBB a non-standard
  ``rotated_bbox`` [cx, cy, w, h, degrees]). Category ids are class index + 1 and image ids
  the images' 1-based order; ``coco/images.json`` names both.
* Label Studio tasks in its documented JSON import format: ``data.image`` plus
  ``predictions[]`` (``model_version``, ``score`` = mean confidence, ``result[]`` with
  ``rectanglelabels`` / ``polygonlabels`` / ``keypointlabels`` / ``choices`` regions in percent
  of the original image, each with its own ``score``). ``data.rank`` and ``data.priority`` carry
  the ranking (:mod:`.ranking`); a compared version is a second entry in ``predictions``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from activities.contracts.predict import LabelStudioOptions
from activities.predict.ranking import Ranked
from activities.predict.records import ImagePredictions, Prediction, Task

Corners = list[tuple[float, float]]


def obb_corners(obb: tuple[float, float, float, float, float]) -> Corners:
    """The four corners of a rotated box, in Ultralytics' order (``xywhr2xyxyxyxy``)."""
    cx, cy, w, h, r = obb
    cos, sin = math.cos(r), math.sin(r)
    v1 = (w / 2 * cos, w / 2 * sin)
    v2 = (-h / 2 * sin, h / 2 * cos)
    return [
        (cx + v1[0] + v2[0], cy + v1[1] + v2[1]),
        (cx + v1[0] - v2[0], cy + v1[1] - v2[1]),
        (cx - v1[0] - v2[0], cy - v1[1] - v2[1]),
        (cx - v1[0] + v2[0], cy - v1[1] + v2[1]),
    ]


def _box_polygon(p: Prediction) -> Corners:
    """A box as a 4-point polygon (a mask too small to trace keeps its box's outline)."""
    assert p.box is not None
    x1, y1, x2, y2 = p.box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def _n(value: float) -> str:
    return f"{value:.6f}"


# ---------------------------------------------------------------------- YOLO
def yolo_line(p: Prediction, task: Task, width: int, height: int, names: Sequence[str]) -> str:
    """One line of a YOLO label file (normalised coordinates, confidence last)."""
    if task == "classify":
        return f"{_n(p.conf)} {names[p.cls]}"
    if task == "obb" and p.obb is not None:
        coords = [c for x, y in obb_corners(p.obb) for c in (x / width, y / height)]
    elif task == "segment":
        polygon = p.polygon or _box_polygon(p)
        coords = [c for x, y in polygon for c in (x / width, y / height)]
    else:
        assert p.box is not None, "every task but classify predicts boxes"
        x1, y1, x2, y2 = p.box
        coords = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height]
        coords += [(x2 - x1) / width, (y2 - y1) / height]
        if task == "pose" and p.keypoints:
            coords += [c for x, y, v in p.keypoints for c in (x / width, y / height, v)]
    return " ".join([str(p.cls), *(_n(c) for c in coords), _n(p.conf)])


def yolo_text(image: ImagePredictions, task: Task, names: Sequence[str]) -> str:
    """The label file of one image (empty when nothing was predicted)."""
    lines = [yolo_line(p, task, image.width, image.height, names) for p in image.predictions]
    return "".join(f"{line}\n" for line in lines)


# ---------------------------------------------------------------------- COCO
def _r(value: float) -> float:
    return round(value, 3)


def coco_result(image_id: int, p: Prediction, task: Task) -> dict[str, Any]:
    """One COCO result record."""
    record: dict[str, Any] = {"image_id": image_id, "category_id": p.cls + 1}
    if p.box is not None:
        x1, y1, x2, y2 = p.box
        record["bbox"] = [_r(x1), _r(y1), _r(x2 - x1), _r(y2 - y1)]
    if task == "segment" and p.polygon:
        record["segmentation"] = [[_r(c) for x, y in p.polygon for c in (x, y)]]
    if task == "pose" and p.keypoints:
        record["keypoints"] = [_r(c) for kp in p.keypoints for c in kp]
    if task == "obb" and p.obb is not None:
        cx, cy, w, h, r = p.obb
        record["rotated_bbox"] = [_r(cx), _r(cy), _r(w), _r(h), _r(math.degrees(r))]
    record["score"] = round(p.conf, 5)
    return record


def coco_results(images: Sequence[ImagePredictions], task: Task) -> list[dict[str, Any]]:
    """COCO results of every image (image ids: 1-based position in ``images``)."""
    return [
        coco_result(image_id, p, task)
        for image_id, image in enumerate(images, 1)
        for p in image.predictions
    ]


def coco_images(
    images: Sequence[ImagePredictions], names: Sequence[str], bucket: str
) -> dict[str, Any]:
    """The images and categories the results' ids refer to (COCO ``images``/``categories``)."""
    return {
        "images": [
            {
                "id": image_id,
                "file_name": image.rel,
                "width": image.width,
                "height": image.height,
                "coco_url": f"s3://{bucket}/{image.key}",
            }
            for image_id, image in enumerate(images, 1)
        ],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(names)],
    }


# ---------------------------------------------------------------------- Label Studio
def _pct(value: float, size: int) -> float:
    return round(100.0 * value / size, 4) if size else 0.0


def _region(image: ImagePredictions, options: LabelStudioOptions, kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "from_name": options.from_name,
        "to_name": options.to_name,
        "original_width": image.width,
        "original_height": image.height,
        "image_rotation": 0,
    }


def _box_value(image: ImagePredictions, p: Prediction) -> dict[str, Any]:
    """``x, y, width, height, rotation`` of a (rotated) box in percent (Label Studio rotates
    about the top-left corner, clockwise in degrees)."""
    w, h = image.width, image.height
    if p.obb is not None:
        _, _, bw, bh, r = p.obb
        x, y = obb_corners(p.obb)[2]  # the corner that is top-left before rotating
        return {
            "x": _pct(x, w), "y": _pct(y, h), "width": _pct(bw, w), "height": _pct(bh, h),
            "rotation": round(math.degrees(r) % 360.0, 4),
        }  # fmt: skip
    assert p.box is not None
    x1, y1, x2, y2 = p.box
    return {
        "x": _pct(x1, w), "y": _pct(y1, h), "width": _pct(x2 - x1, w), "height": _pct(y2 - y1, h),
        "rotation": 0,
    }  # fmt: skip


def label_studio_regions(
    image: ImagePredictions,
    predictions: Sequence[Prediction],
    task: Task,
    names: Sequence[str],
    options: LabelStudioOptions,
    id_prefix: str,
) -> list[dict[str, Any]]:
    """The ``result`` list of one prediction entry (one region per prediction)."""
    regions: list[dict[str, Any]] = []
    for j, p in enumerate(predictions):
        name = names[p.cls]
        if task == "classify":
            region = {
                "type": "choices", "from_name": options.from_name, "to_name": options.to_name,
                "value": {"choices": [name]},
            }  # fmt: skip
            regions.append({"id": f"{id_prefix}-{j}", **region, "score": round(p.conf, 5)})
            break  # Choices holds the top class only
        if task == "segment" and p.polygon:
            region = _region(image, options, "polygonlabels")
            points = [[_pct(x, image.width), _pct(y, image.height)] for x, y in p.polygon]
            region["value"] = {"points": points, "polygonlabels": [name]}
        else:
            region = _region(image, options, "rectanglelabels")
            region["value"] = {**_box_value(image, p), "rectanglelabels": [name]}
        regions.append({"id": f"{id_prefix}-{j}", **region, "score": round(p.conf, 5)})
        for k, (x, y, v) in enumerate(p.keypoints or []):
            if v < 0.5:
                continue
            point = _region(image, options, "keypointlabels")
            point["from_name"] = options.keypoints_from_name
            point["value"] = {
                "x": _pct(x, image.width), "y": _pct(y, image.height), "width": 0.5,
                "keypointlabels": [name],
            }  # fmt: skip
            regions.append({"id": f"{id_prefix}-{j}-k{k}", **point, "score": round(v, 5)})
    return regions


def _entry(
    image: ImagePredictions,
    predictions: Sequence[Prediction],
    model_version: str,
    task: Task,
    names: Sequence[str],
    options: LabelStudioOptions,
    id_prefix: str,
) -> dict[str, Any]:
    mean = sum(p.conf for p in predictions) / len(predictions) if predictions else 0.0
    return {
        "model_version": model_version,
        "score": round(mean, 5),
        "result": label_studio_regions(image, predictions, task, names, options, id_prefix),
    }


def label_studio_task(
    ranked: Ranked,
    *,
    bucket: str,
    task: Task,
    names: Sequence[str],
    model_version: str,
    compare_version: str | None,
    options: LabelStudioOptions,
) -> dict[str, Any]:
    """One Label Studio task: the image, the ranking, the model's (and compared) predictions."""
    image = ranked.image
    tag = hashlib.sha256(image.key.encode()).hexdigest()[:12]
    predictions = [_entry(image, image.predictions, model_version, task, names, options, tag)]
    if compare_version is not None and image.compare is not None:
        predictions.append(
            _entry(image, image.compare, compare_version, task, names, options, f"{tag}-c")
        )
    return {
        "data": {
            options.image_field: options.image_url.format(bucket=bucket, key=image.key),
            "key": image.key,
            "rank": ranked.rank,
            "priority": round(ranked.score, 5),
        },
        "predictions": predictions,
    }
