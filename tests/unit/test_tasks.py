"""Tasks other than detect, as pure logic: label lines, classification folders, the gate on the
task's metric, the classification bootstrap, request checks and manifest hashes."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from activities.contracts.dataset import AssembleRequest
from activities.contracts.evaluation import DifferenceCI, ModelMetrics
from activities.contracts.gate import GatePolicy
from activities.contracts.retrain import RetrainRequest
from activities.dataset.classify import read_classify
from activities.dataset.manifest import Manifest, ManifestImage, ManifestReport
from activities.dataset.tasks import TaskSpec, add_task_line, parse_task_spec
from activities.dataset.validation import Labels, Report
from activities.evaluation.bootstrap import paired_bootstrap, scores
from activities.evaluation.validate import ImageStats
from activities.infra.errors import BadInputError
from workflows.gate import decide

POSE = TaskSpec("pose", (2, 3), (1, 0))


def _lines(spec: TaskSpec, *lines: str) -> tuple[Labels, Report]:
    report = Report()
    labels = Labels("images/a.png", report)
    for number, line in enumerate(lines, start=1):
        add_task_line(labels, line, 3, f"line {number}", spec)
    return labels, report


def _only(report: Report) -> dict[str, int]:
    return {kind: n for kind, n in report.counts.items() if n}


# ---------------------------------------------------------------------- label lines
def test_good_lines_of_each_task_are_kept_canonically() -> None:
    seg, _ = _lines(TaskSpec("segment"), "1 0.1 0.1 0.5 0.1 0.3 0.4")
    assert seg.kept == ["1 0.100000 0.100000 0.500000 0.100000 0.300000 0.400000"]
    pose, _ = _lines(POSE, "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 0")
    assert pose.kept == [
        "0 0.500000 0.500000 0.200000 0.200000 0.450000 0.450000 2 0.550000 0.550000 0"
    ]
    obb, _ = _lines(TaskSpec("obb"), "2 0.1 0.1 0.4 0.1 0.4 0.3 0.1 0.3")
    assert obb.kept == ["2 0.100000 0.100000 0.400000 0.100000 0.400000 0.300000 0.100000 0.300000"]
    assert not seg.dropped and not pose.dropped and not obb.dropped


@pytest.mark.parametrize(
    ("spec", "line", "kind"),
    [
        (TaskSpec("segment"), "0 0.1 0.1 0.5 0.1", "polygon_too_few_points"),
        (TaskSpec("segment"), "0 0.1 0.1 0.5 0.1 1.7 0.4", "polygon_outside_image"),
        (TaskSpec("segment"), "0 1.1 0.1 1.4 0.1 1.3 0.4", "polygon_outside_image"),
        (TaskSpec("segment"), "0 0.1 0.1 0.5 0.1 0.3", "wrong_field_count"),
        (TaskSpec("segment"), "5 0.1 0.1 0.5 0.1 0.3 0.4", "class_out_of_range"),
        (POSE, "0 0.5 0.5 0.2 0.2 0.45 0.45 2", "keypoint_count_mismatch"),
        (POSE, "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.5 0.5 2 0.4 0.4 2", "keypoint_count_mismatch"),
        (POSE, "0 0.5 0.5 0.2 0.2 0.45 0.45 3 0.55 0.55 2", "visibility_out_of_range"),
        (POSE, "0 0.5 0.5 0.2 0.2 0.45 0.45 -1 0.55 0.55 2", "visibility_out_of_range"),
        (POSE, "0 0.5 0.5 0 0.2 0.45 0.45 2 0.55 0.55 2", "zero_area"),
        (TaskSpec("obb"), "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4 0.4", "degenerate_rotated_box"),
        (TaskSpec("obb"), "0 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1", "degenerate_rotated_box"),
        (TaskSpec("obb"), "0 0.1 0.1 0.4 0.1 0.4 0.3", "wrong_field_count"),
        (TaskSpec("obb"), "0 0.1 0.1 3.0 0.1 0.4 0.3 0.1 0.3", "coords_absurd"),
    ],
)
def test_each_bad_line_is_dropped_and_makes_the_image_incomplete(
    spec: TaskSpec, line: str, kind: str
) -> None:
    labels, report = _lines(spec, line)
    assert labels.kept == [] and _only(report) == {kind: 1}
    # Labels never lie: the image has an object left unlabelled, whatever the task.
    assert labels.incomplete and kind in labels.dropped[0]


def test_a_polygon_slightly_outside_is_clipped_and_reported() -> None:
    labels, report = _lines(TaskSpec("segment"), "0 0.1 0.1 0.5 0.1 1.2 0.4")
    assert labels.kept == ["0 0.100000 0.100000 0.500000 0.100000 1.000000 0.400000"]
    assert _only(report) == {"coords_clipped": 1} and not labels.incomplete


def test_pose_spec_comes_from_data_yaml() -> None:
    spec = parse_task_spec("pose", b"names: [a]\nkpt_shape: [4, 3]\nflip_idx: [1, 0, 3, 2]\n", "d")
    assert spec == TaskSpec("pose", (4, 3), (1, 0, 3, 2))
    assert parse_task_spec("segment", None, "d") == TaskSpec("segment")
    with pytest.raises(BadInputError, match="kpt_shape must be"):
        parse_task_spec("pose", b"names: [a]\nkpt_shape: [4, 5]\n", "data.yaml")
    with pytest.raises(BadInputError, match="flip_idx must be a permutation"):
        parse_task_spec("pose", b"kpt_shape: [2, 3]\nflip_idx: [0, 0]\n", "data.yaml")
    with pytest.raises(BadInputError, match=r"needs a data\.yaml"):
        parse_task_spec("pose", None, "data.yaml")


# ---------------------------------------------------------------------- classify folders
def test_classification_folders_and_their_findings() -> None:
    objects = dict.fromkeys(
        [
            "circle/a.png",
            "train/square/b.png",
            "valid/circle/c.png",
            "loose.png",
            "test/d.png",
            "circle/square/e.png",
            "hexagon/f.png",
        ]
    )
    report = Report()
    source = read_classify(objects, lambda keys: {}, ["square", "circle"], report)
    assert source.class_names == ["circle", "square"]  # Ultralytics' (sorted) class ids
    found = {(c.rel, c.class_id, c.folder_split) for c in source.candidates}
    assert found == {("circle/a.png", 0, None), ("train/square/b.png", 1, "train"),
                     ("valid/circle/c.png", 0, "val")}  # fmt: skip
    assert _only(report) == {
        "image_in_no_class_folder": 2,
        "image_in_two_class_folders": 1,
        "unknown_class_folder": 1,
    }


def test_classification_class_names_default_to_the_folders() -> None:
    objects = dict.fromkeys(["b/x.png", "a/y.png", "test/a/z.png"])
    source = read_classify(objects, lambda keys: {}, None, Report())
    assert source.class_names == ["a", "b"]


# ---------------------------------------------------------------------- gate per task
def _seg(mask: float, box: float = 0.5) -> ModelMetrics:
    return ModelMetrics(
        task="segment", precision=0.5, recall=0.5, map50=0.6, map50_95=box,
        scores={"box_map50": 0.6, "box_map50_95": box, "mask_map50": 0.5,
                "mask_map50_95": mask},
    )  # fmt: skip


def test_gate_judges_the_task_primary_metric_by_default() -> None:
    interval = DifferenceCI(estimate=0.1, low=0.02, high=0.2, level=0.95, resamples=50, seed=0)
    policy = GatePolicy(require_confidence=True)
    decision = decide(_seg(0.4, box=0.9), _seg(0.3, box=0.95), interval, policy)
    assert decision.promote and decision.metric == "mask_map50_95"
    assert decision.candidate_map50_95 == 0.4 and decision.champion_map50_95 == 0.3
    assert "mask mAP50-95" in decision.reason


def test_gate_on_another_metric_of_the_task_has_no_interval() -> None:
    interval = DifferenceCI(estimate=0.1, low=0.02, high=0.2, level=0.95, resamples=50, seed=0)
    policy = GatePolicy(metric="box_map50_95", require_confidence=True)
    decision = decide(_seg(0.4, box=0.9), _seg(0.3, box=0.8), interval, policy)
    assert not decision.promote and decision.metric == "box_map50_95"
    assert "no bootstrap interval" in decision.reason


def test_classify_is_gated_on_top1_and_detect_keeps_its_words() -> None:
    cls = ModelMetrics(task="classify", precision=0, recall=0, map50=0, map50_95=0,
                       scores={"top1": 0.8, "top5": 1.0})  # fmt: skip
    decision = decide(cls, None, None, GatePolicy(floor=0.75))
    assert decision.promote and decision.metric == "top1" and "top-1 accuracy" in decision.reason
    detect = ModelMetrics(precision=0.5, recall=0.5, map50=0.6, map50_95=0.4)
    plain = decide(detect, None, None, GatePolicy())
    assert plain.metric is None and "candidate mAP50-95 0.4000" in plain.reason


def test_a_gate_metric_of_another_task_is_refused_in_the_request() -> None:
    dataset = AssembleRequest(dataset="d", prefix="datasets/d", task="classify")
    with pytest.raises(ValidationError, match=r"mask_map50_95.*not measured for a classify"):
        RetrainRequest(model_name="m", dataset=dataset, gate=GatePolicy(metric="mask_map50_95"))
    RetrainRequest(model_name="m", dataset=dataset, gate=GatePolicy(metric="top5"))


# ---------------------------------------------------------------------- classify bootstrap
def _accuracy(correct: list[bool], targets: list[int]) -> ImageStats:
    return ImageStats(
        files=[f"{i}.png" for i in range(len(correct))],
        kind="accuracy",
        correct=correct,
        target_cls=[np.array([float(t)]) for t in targets],
    )


def test_classification_bootstrap_is_paired_over_images() -> None:
    targets = [0, 0, 1, 1, 1, 0, 1, 0]
    cand = _accuracy([True, True, True, True, False, True, True, True], targets)
    champ = _accuracy([True, False, True, False, False, True, False, True], targets)
    overall, per_class = scores(cand)
    assert overall == pytest.approx(7 / 8) and per_class == {0: 1.0, 1: 0.75}
    result = paired_bootstrap(cand, champ, resamples=200, seed=1, level=0.9)
    assert result.overall.estimate == pytest.approx(7 / 8 - 4 / 8)
    assert 0 <= result.overall.low <= result.overall.estimate <= result.overall.high
    assert set(result.per_class) == {0, 1}


# ---------------------------------------------------------------------- manifests
def _manifest(**fields: object) -> Manifest:
    image = ManifestImage(key="k", etag="e", sha256="a" * 64, split="train", width=10,
                          height=10, labels=["0 0.5 0.5 0.2 0.2"])  # fmt: skip
    return Manifest(
        dataset="d", bucket="b", prefix="p", format="yolo", class_names=["a"],
        split_ratios={}, images=[image], counts={}, created_at="t",
        report=ManifestReport(listed=1, unverified=0, counts={}), **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_detect_manifests_hash_as_before_and_tasks_are_hashed() -> None:
    detect = _manifest()
    assert "task" not in detect.content()
    assert _manifest(task="pose", kpt_shape=[4, 3]).sha256() != detect.sha256()
    assert (
        _manifest(task="pose", kpt_shape=[4, 3]).sha256()
        != _manifest(task="pose", kpt_shape=[4, 2]).sha256()
    )
