"""Evidence of a version, the pure parts: per-image scores and ranking, the per-class paired
bootstrap, the side-by-side pictures (PIL) and the report's evidence sections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activities.contracts.gate import GatePolicy
from activities.contracts.registry import ArtifactRecord, PublishRequest
from activities.evaluation.compare import compare_images, image_score
from activities.evaluation.pictures import (
    GAP,
    PALETTE,
    PANEL_MIN,
    TITLE_HEIGHT,
    Panel,
    panel_scale,
    side_by_side,
)
from activities.evaluation.validate import ImageStats
from activities.registry.report import render_report
from tests.helpers import factories
from tests.helpers.registry_examples import EXAMPLES
from workflows.gate import decide, protect_classes

HIT, MISS = np.ones((1, 10), bool), np.zeros((1, 10), bool)


def stats(images: dict[str, tuple[list[np.ndarray], list[float], list[int]]]) -> ImageStats:
    """ImageStats from ``{file: (tp rows, confidences, target classes)}``; predicted class 0."""
    result = ImageStats()
    for name, (tp, conf, targets) in images.items():
        result.files.append(name)
        result.tp.append(np.concatenate(tp) if tp else np.zeros((0, 10), bool))
        result.conf.append(np.array(conf, dtype=float))
        result.pred_cls.append(np.zeros(len(conf)))
        result.target_cls.append(np.array(targets, dtype=float))
    return result


# ---------------------------------------------------------------------- per-image score
def test_image_score_is_f1_over_iou_thresholds_at_the_confidence() -> None:
    half = np.array([[True] * 5 + [False] * 5])  # matched up to IoU 0.70 only
    score = image_score(np.concatenate([half, MISS]), np.array([0.9, 0.3]), np.array([0.0]), 0.25)
    # two detections, one object: F1 = 2*1/3 at five thresholds, 0 at the other five
    assert score.score == pytest.approx((2 / 3) / 2)
    assert (score.matched, score.missed, score.spurious) == (1, 0, 1)
    below = image_score(np.concatenate([half, MISS]), np.array([0.9, 0.1]), np.array([0.0]), 0.25)
    assert below.spurious == 0 and below.score == pytest.approx(0.5)  # the 0.1 one is ignored


def test_empty_image_scores_one_when_left_empty_and_zero_with_a_false_detection() -> None:
    empty = np.zeros((0, 10), bool)
    assert image_score(empty, np.zeros(0), np.zeros(0), 0.25).score == 1.0
    spurious = image_score(MISS, np.array([0.8]), np.zeros(0), 0.25)
    assert (spurious.score, spurious.spurious, spurious.missed) == (0.0, 1, 0)


def test_images_are_ranked_both_ways_and_capped() -> None:
    champion = stats({f"{c}.png": ([HIT], [0.9], [0]) for c in "abcde"})
    candidate = stats(
        {
            "a.png": ([MISS], [0.9], [0]),  # worst: -1
            "b.png": ([HIT, MISS], [0.9, 0.8], [0]),  # one spurious: -1/3
            "c.png": ([HIT], [0.9], [0]),  # same
            "d.png": ([MISS], [0.9], [0]),  # -1 again (tie with a: by name)
            "e.png": ([HIT], [0.2], [0]),  # below conf: missed, -1
        }
    )
    ranked = compare_images(candidate, champion, conf=0.25, keep=2)
    comparison = ranked.comparison
    assert (comparison.images, comparison.worse, comparison.better, comparison.unchanged) == (
        5,
        4,
        0,
        1,
    )
    assert [e.image for e in comparison.worst] == ["a.png", "d.png"]
    assert ranked.worst_indices == [0, 3] and comparison.best == []
    assert comparison.worst[0].difference == pytest.approx(-1.0)
    assert comparison.worst[0].candidate.missed == 1 and comparison.worst[0].champion.matched == 1
    # the other way round: the champion's view
    flipped = compare_images(champion, candidate, conf=0.25, keep=10).comparison
    assert [e.image for e in flipped.best] == ["a.png", "d.png", "e.png", "b.png"]


def test_comparison_needs_the_same_images() -> None:
    with pytest.raises(ValueError, match="different images"):
        compare_images(
            stats({"a.png": ([HIT], [0.9], [0])}),
            stats({"b.png": ([HIT], [0.9], [0])}),
            conf=0.25,
            keep=1,
        )


# ---------------------------------------------------------------------- per-class bootstrap
def test_paired_bootstrap_gives_an_interval_per_class() -> None:
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from activities.evaluation.bootstrap import difference_ci, paired_bootstrap

    # Every image holds one object of class 0 and one of class 1. The champion finds both;
    # the candidate finds class 0 only (class 1 collapsed).
    def image(find_class_1: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        tp = np.ones((2 if find_class_1 else 1, 10), bool)
        conf = np.array([0.9, 0.8][: len(tp)])
        return tp, conf, np.array([0.0, 1.0][: len(tp)]), np.array([0.0, 1.0])

    def build(find_class_1: bool) -> ImageStats:
        result = ImageStats()
        for i in range(12):
            tp, conf, pred, target = image(find_class_1)
            result.files.append(f"{i}.png")
            result.tp.append(tp)
            result.conf.append(conf)
            result.pred_cls.append(pred)
            result.target_cls.append(target)
        return result

    perfect = 0.995  # Ultralytics' AP of a perfect detector (interpolated PR curve)
    found = paired_bootstrap(build(False), build(True), resamples=60, seed=1, level=0.9)
    assert found.overall.estimate == pytest.approx(-perfect / 2)
    assert set(found.per_class) == {0, 1}
    lost, kept = found.per_class[1], found.per_class[0]
    assert (lost.estimate, lost.low, lost.high) == pytest.approx((-perfect,) * 3)
    assert (kept.estimate, kept.low, kept.high) == pytest.approx((0.0, 0.0, 0.0))
    assert lost.resamples == 60 and lost.level == 0.9
    assert difference_ci(build(False), build(True), resamples=60, seed=1, level=0.9) == (
        found.overall
    )
    none = paired_bootstrap(build(False), build(True), resamples=0, seed=1, level=0.9)
    assert none.per_class[1].resamples == 0 and none.per_class[1].low == pytest.approx(-perfect)


# ---------------------------------------------------------------------- pictures
def test_side_by_side_picture_has_three_titled_panels_with_boxes(tmp_path: Path) -> None:
    source = tmp_path / "image.png"
    Image.new("RGB", (96, 64), (128, 128, 128)).save(source)
    scale = panel_scale(96, 64)
    assert scale == PANEL_MIN / 96
    boxes = np.array([[10, 10, 40, 40, 0.9, 1]], dtype=float)
    truth = np.array([[2, 50, 20, 90, 60]], dtype=float)
    sheet = side_by_side(
        source,
        [
            Panel("candidate", boxes),
            Panel("champion", np.zeros((0, 6))),
            Panel("truth", truth, True),
        ],
        {1: "square", 2: "triangle"},
    )
    panel_w, panel_h = round(96 * scale), round(64 * scale)
    assert sheet.size == (3 * panel_w + 2 * GAP, TITLE_HEIGHT + panel_h)
    colours = {
        index: set(sheet.crop((x, TITLE_HEIGHT, x + panel_w, sheet.height)).getdata())
        for index, x in enumerate(range(0, sheet.width, panel_w + GAP))
    }
    assert PALETTE[1] in colours[0]  # the candidate's square box
    assert PALETTE[1] not in colours[1] and PALETTE[2] not in colours[1]  # nothing found
    assert PALETTE[2] in colours[2]  # the ground-truth triangle box


def test_large_images_are_shrunk_small_ones_enlarged() -> None:
    assert panel_scale(1280, 720) == 0.5
    assert panel_scale(500, 400) == 1.0
    assert panel_scale(40, 100) == PANEL_MIN / 100


# ---------------------------------------------------------------------- report
def test_report_shows_per_class_plots_and_ranked_pictures_with_relative_links() -> None:
    base = next(e for e in EXAMPLES if isinstance(e, PublishRequest))
    evaluation = factories.with_class_loss(factories.evaluation(0.6, 0.5, 2)).model_copy(
        update={"evidence": factories.evidence()}
    )
    policy = GatePolicy()
    decision = protect_classes(
        decide(
            evaluation.candidate, evaluation.champion, evaluation.ci, policy, champion_version=2
        ),
        evaluation,
    )
    request = base.model_copy(update={"evaluation": evaluation, "gate": decision})

    def record(name: str) -> ArtifactRecord:
        return ArtifactRecord(key=f"models/parts/v3/{name}", sha256="a" * 64, size=1)

    names = ["evidence/PR_curve.png", "evidence/worse-01.png", "evidence/results.png"]
    artifacts = {name: record(name) for name in names}
    text = render_report(request, 3, decision, artifacts)

    assert "not promoted: class 'square' AP50-95 0.7000 -> 0.1000" in text
    assert "| `square` | 13 | 0.1000 | 0.7000 | -0.6000 | [-0.7000, -0.5000] | **LOST" in text
    assert "| `circle` | 8 | 0.6000 | 0.5000 | +0.1000 | [-0.0500, +0.0500] | not judged |" in text
    assert "![Precision-recall curve (candidate, test split)](evidence/PR_curve.png)" in text
    assert "![Training curves" in text and "(evidence/results.png)" in text
    # a plot not stored with the version is not linked
    assert "confusion_matrix_normalized.png" not in text
    assert "16 test images: the candidate does worse on 3, better on 2, the same on 11" in text
    assert "| 1 | `syn_s1_000003.png` | 0.200 (1 missed, 0 spurious) | 0.900" in text
    assert "[worse-01.png](evidence/worse-01.png)" in text
    assert (
        "![syn_s1_000003.png: candidate | champion | ground truth](evidence/worse-01.png)" in text
    )
    # better-01.png was not stored: listed without a link
    assert "| 1 | `syn_s1_000007.png` |" in text and "evidence/better-01.png" not in text
    assert text == render_report(request, 3, decision, artifacts)
