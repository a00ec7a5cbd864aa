"""Prediction outputs from stored predictions: YOLO lines, COCO records, Label Studio tasks
(validated against Label Studio's documented import format), the ranking, the key layout,
request validation, and Ultralytics ``Results`` of every task turned into predictions."""

from __future__ import annotations

import math
from typing import Any

import jsonschema
import numpy as np
import pytest
from pydantic import ValidationError

from activities.contracts.predict import ImageSource, LabelStudioOptions, PredictRequest
from activities.predict import layout
from activities.predict.formats import coco_result, label_studio_task, obb_corners, yolo_line
from activities.predict.ranking import disagreement, rank, uncertainty
from activities.predict.records import ImagePredictions, Prediction, Task
from tests.helpers.label_studio import result_ids_unique, validate_tasks

NAMES = ["circle", "square", "triangle"]
W, H = 200, 100


def image(
    predictions: list[Prediction], compare: list[Prediction] | None = None, key: str = "a/x.png"
) -> ImagePredictions:
    return ImagePredictions(
        key=key, rel=key.split("/", 1)[1], width=W, height=H, predictions=predictions,
        compare=compare,
    )  # fmt: skip


BOX = Prediction(cls=1, conf=0.8, box=(20.0, 10.0, 60.0, 50.0))
BY_TASK: dict[Task, Prediction] = {
    "detect": BOX,
    "segment": BOX.model_copy(update={"polygon": [(20.0, 10.0), (60.0, 10.0), (40.0, 50.0)]}),
    "pose": BOX.model_copy(update={"keypoints": [(30.0, 20.0, 0.9), (50.0, 40.0, 0.2)]}),
    "obb": BOX.model_copy(update={"obb": (40.0, 30.0, 40.0, 20.0, math.pi / 6)}),
    "classify": Prediction(cls=2, conf=0.7),
}


# ---------------------------------------------------------------------- YOLO and COCO
def test_yolo_detection_line_is_normalised_xywh_then_confidence() -> None:
    assert yolo_line(BOX, "detect", W, H, NAMES) == "1 0.200000 0.300000 0.200000 0.400000 0.800000"


def test_yolo_lines_of_the_other_tasks() -> None:
    seg = yolo_line(BY_TASK["segment"], "segment", W, H, NAMES).split()
    expected = "1 0.100000 0.100000 0.300000 0.100000 0.200000 0.500000 0.800000"
    assert " ".join(seg) == expected
    pose = yolo_line(BY_TASK["pose"], "pose", W, H, NAMES).split()
    assert pose[5:8] == ["0.150000", "0.200000", "0.900000"] and pose[-1] == "0.800000"
    obb = [float(v) for v in yolo_line(BY_TASK["obb"], "obb", W, H, NAMES).split()[1:-1]]
    corners = [(obb[i] * W, obb[i + 1] * H) for i in range(0, 8, 2)]
    assert np.allclose(np.mean(corners, axis=0), (40.0, 30.0))  # rotated about its centre
    assert math.dist(corners[0], corners[1]) == pytest.approx(20.0, abs=1e-3)  # height side
    assert math.dist(corners[1], corners[2]) == pytest.approx(40.0, abs=1e-3)  # width side
    assert yolo_line(BY_TASK["classify"], "classify", W, H, NAMES) == "0.700000 triangle"


def test_coco_record_has_pixel_xywh_and_one_based_category() -> None:
    assert coco_result(7, BOX, "detect") == {
        "image_id": 7, "category_id": 2, "bbox": [20.0, 10.0, 40.0, 40.0], "score": 0.8,
    }  # fmt: skip
    seg = coco_result(1, BY_TASK["segment"], "segment")
    assert seg["segmentation"] == [[20.0, 10.0, 60.0, 10.0, 40.0, 50.0]]
    assert coco_result(1, BY_TASK["obb"], "obb")["rotated_bbox"][4] == pytest.approx(30.0)


# ---------------------------------------------------------------------- Label Studio
def _task(task: Task, compare: bool = False, **options: Any) -> dict[str, Any]:
    preds = [BY_TASK[task]]
    ranked = rank([image(preds, compare=preds if compare else None)])[0]
    return label_studio_task(
        ranked, bucket="data", task=task, names=NAMES, model_version="m v1",
        compare_version="m v2" if compare else None, options=LabelStudioOptions(**options),
    )  # fmt: skip


@pytest.mark.parametrize("task", list(BY_TASK))
def test_label_studio_tasks_validate_against_the_documented_format(task: Task) -> None:
    tasks = [_task(task, compare=True)]
    validate_tasks(tasks)
    assert result_ids_unique(tasks)
    assert [p["model_version"] for p in tasks[0]["predictions"]] == ["m v1", "m v2"]


def test_label_studio_box_is_in_percent_of_the_original_image() -> None:
    task = _task("detect", from_name="box", image_url="https://minio.local/{bucket}/{key}")
    assert task["data"]["image"] == "https://minio.local/data/a/x.png"
    assert task["data"]["rank"] == 1 and task["data"]["key"] == "a/x.png"
    (region,) = task["predictions"][0]["result"]
    assert region["type"] == "rectanglelabels" and region["from_name"] == "box"
    assert region["value"] == {
        "x": 10.0, "y": 10.0, "width": 20.0, "height": 40.0, "rotation": 0,
        "rectanglelabels": ["square"],
    }  # fmt: skip
    assert region["score"] == 0.8 and task["predictions"][0]["score"] == 0.8


def test_label_studio_rotated_box_turns_about_its_top_left_corner() -> None:
    value = _task("obb")["predictions"][0]["result"][0]["value"]
    assert value["rotation"] == pytest.approx(30.0)
    # Label Studio rotates the box about (x, y): un-rotating the corners gives back the box.
    x, y = value["x"] * W / 100, value["y"] * H / 100
    r = math.radians(value["rotation"])
    far = (x + 40 * math.cos(r) - 20 * math.sin(r), y + 40 * math.sin(r) + 20 * math.cos(r))
    corners = obb_corners(BY_TASK["obb"].obb or (0, 0, 0, 0, 0))
    assert any(math.dist(far, corner) < 1e-3 for corner in corners)  # 4-decimal percents


def test_the_documented_example_passes_and_broken_tasks_fail_the_schema() -> None:
    documented = {  # Label Studio's "Import bbox and choice pre-annotations for images"
        "data": {"image": "/static/samples/sample.jpg"},
        "predictions": [{"model_version": "one", "score": 0.5, "result": [
            {"id": "result1", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": 600, "original_height": 403, "image_rotation": 0,
             "value": {"rotation": 0, "x": 4.98, "y": 12.82, "width": 32.52, "height": 44.91,
                       "rectanglelabels": ["Airplane"]}},
            {"id": "result3", "type": "choices", "from_name": "choice", "to_name": "image",
             "value": {"choices": ["Airbus"]}},
        ]}],
    }  # fmt: skip
    validate_tasks([documented])
    in_pixels = _task("detect")
    in_pixels["predictions"][0]["result"][0]["value"]["x"] = 150.0
    no_from = _task("detect")
    del no_from["predictions"][0]["result"][0]["from_name"]
    no_image = _task("detect")
    del no_image["data"]["image"]
    for broken in (in_pixels, no_from, no_image):
        with pytest.raises(jsonschema.ValidationError):
            validate_tasks([broken])


# ---------------------------------------------------------------------- ranking
def test_uncertainty_peaks_at_half_confidence() -> None:
    assert uncertainty([]) == 0.0
    assert uncertainty([BOX.model_copy(update={"conf": 0.5})]) == pytest.approx(1.0)
    assert uncertainty([BOX.model_copy(update={"conf": 0.95})]) == pytest.approx(0.1)


def test_disagreement_counts_unmatched_predictions() -> None:
    moved = BOX.model_copy(update={"box": (120.0, 50.0, 160.0, 90.0)})
    other_class = BOX.model_copy(update={"cls": 0})
    assert disagreement([BOX], [BOX], classify=False) == 0.0
    assert disagreement([BOX], [moved], classify=False) == 1.0
    assert disagreement([BOX], [other_class], classify=False) == 1.0
    assert disagreement([BOX, moved], [BOX], classify=False) == pytest.approx(0.5)
    assert disagreement([], [], classify=False) == 0.0
    top = Prediction(cls=0, conf=0.9)
    assert disagreement([top], [top.model_copy(update={"cls": 1})], classify=True) == 1.0


def test_ranking_puts_doubt_and_disagreement_first_and_unreadable_last() -> None:
    sure = image([BOX.model_copy(update={"conf": 0.99})], compare=[BOX], key="a/sure.png")
    doubtful = image([BOX.model_copy(update={"conf": 0.5})], compare=[BOX], key="a/doubt.png")
    differ = image([BOX.model_copy(update={"conf": 0.99})], compare=[], key="a/differ.png")
    broken = ImagePredictions(key="a/broken.png", rel="broken.png", error="unreadable")
    ranked = rank([sure, broken, doubtful, differ])
    order = ["a/differ.png", "a/doubt.png", "a/sure.png", "a/broken.png"]
    assert [r.image.key for r in ranked] == order
    assert [r.rank for r in ranked] == [1, 2, 3, 4]
    assert ranked[0].disagreement == 1.0 and ranked[1].uncertainty == pytest.approx(1.0)


# ---------------------------------------------------------------------- layout and requests
def test_layout_knows_its_own_objects() -> None:
    out = "predictions/today"
    assert layout.yolo_label_key(out, "images/a.png") == "predictions/today/yolo/images/a.txt"
    assert layout.parse_part_key(layout.part_key(out, "ab" * 32, 12)) == 12
    for key in ("manifest.json", "coco/results.json", "yolo/x/y.txt", "shards/abc.json"):
        assert layout.is_ours(out, f"{out}/{key}")
    for key in ("predictions/today/notes.txt", "predictions/todayx/manifest.json"):
        assert not layout.is_ours(out, key)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"source": {}}, "exactly one image source"),
        ({"source": {"prefix": "a", "split": "test"}}, "split applies only"),
        ({"formats": []}, "at least one"),
        ({"formats": ["coco", "coco"]}, "duplicates"),
        ({"formats": ["pdf"]}, "coco"),
        ({"version": 2, "compare_version": 2}, "must differ"),
        ({"out": ""}, "not the bucket root"),
        ({"out": "/abs"}, "unsafe"),
        ({"out": "a/../b"}, "unsafe"),
        ({"label_studio": {"image_url": "s3://{bucket}"}}, "{key}"),
        ({"backend": "tensorrt"}, "pytorch"),
    ],
)
def test_bad_requests_are_refused_with_the_problem_named(
    fields: dict[str, Any], problem: str
) -> None:
    base: dict[str, Any] = {"model": "m", "source": {"prefix": "in"}, "out": "out", **fields}
    with pytest.raises(ValidationError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        PredictRequest.model_validate(base)
    assert ImageSource(prefix="in/").prefix == "in"


# ---------------------------------------------------------------------- Ultralytics results
def _results(**parts: Any) -> Any:
    import torch

    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics.engine.results import Results

    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in parts.items()}
    return Results(np.zeros((H, W, 3), np.uint8), "x.png", dict(enumerate(NAMES)), **tensors)


def test_ultralytics_results_of_every_task_become_predictions() -> None:
    from activities.predict.infer import predictions_of

    boxes = [[20, 10, 60, 50, 0.8, 1]]
    (det,) = predictions_of(_results(boxes=boxes), "detect")
    assert det.cls == 1 and det.box == (20.0, 10.0, 60.0, 50.0)
    assert det.conf == pytest.approx(0.8)
    mask = np.zeros((1, H, W))
    mask[0, 10:50, 20:60] = 1
    (seg,) = predictions_of(_results(boxes=boxes, masks=mask.tolist()), "segment")
    assert seg.polygon and len(seg.polygon) >= 3
    xs = [x for x, _ in seg.polygon]
    assert min(xs) == pytest.approx(20, abs=1.5) and max(xs) == pytest.approx(59, abs=1.5)
    kpts = [[[30, 20, 0.9], [50, 40, 0.2]]]
    (pose,) = predictions_of(_results(boxes=boxes, keypoints=kpts), "pose")
    assert pose.keypoints == [(30.0, 20.0, pytest.approx(0.9)), (50.0, 40.0, pytest.approx(0.2))]
    (obb,) = predictions_of(_results(obb=[[40, 30, 40, 20, 0.5, 0.7, 2]]), "obb")
    assert obb.cls == 2 and obb.obb == pytest.approx((40, 30, 40, 20, 0.5))
    assert obb.box is not None  # the enclosing axis-aligned box, for ranking and COCO
    top = predictions_of(_results(probs=[0.1, 0.2, 0.7]), "classify")
    assert [p.cls for p in top] == [2, 1, 0] and top[0].conf == pytest.approx(0.7)
    assert predictions_of(_results(boxes=np.zeros((0, 6))), "detect") == []
