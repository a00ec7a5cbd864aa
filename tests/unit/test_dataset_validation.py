"""Validation of label lines and images: each finding kind, clipping and canonical output."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from activities.dataset.validation import (
    KINDS,
    Report,
    check_image,
    clean_label_lines,
    coco_to_yolo,
)


def _clean(*lines: str, nc: int = 3) -> tuple[list[str], Report]:
    report = Report(max_examples=2)
    return clean_label_lines(lines, nc, "images/a.png", report), report


def _only(report: Report) -> dict[str, int]:
    return {kind: n for kind, n in report.counts.items() if n}


def test_good_lines_are_kept_canonically() -> None:
    kept, report = _clean("0 0.5 0.5 0.2 0.2", "", "2   0.25 0.75 0.1 0.3  ", "1.0 .5 .5 .5 .5")
    assert kept == [
        "0 0.500000 0.500000 0.200000 0.200000",
        "2 0.250000 0.750000 0.100000 0.300000",
        "1 0.500000 0.500000 0.500000 0.500000",
    ]
    assert _only(report) == {}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("0 0.5 0.5 0.2", "wrong_field_count"),
        ("0 0.5 0.5 0.2 0.2 0.9", "wrong_field_count"),
        ("0 0.5 abc 0.2 0.2", "malformed_value"),
        ("3 0.5 0.5 0.2 0.2", "class_out_of_range"),
        ("-1 0.5 0.5 0.2 0.2", "class_out_of_range"),
        ("1.5 0.5 0.5 0.2 0.2", "class_out_of_range"),
        ("0 nan 0.5 0.2 0.2", "coords_absurd"),
        ("0 0.5 0.5 inf 0.2", "coords_absurd"),
        ("0 2.0 0.5 0.2 0.2", "coords_absurd"),
        ("0 0.5 0.5 -0.2 0.2", "coords_absurd"),
        ("0 0.5 0.5 0 0.2", "zero_area"),
        ("0 1.2 0.5 0.2 0.2", "zero_area"),  # entirely right of the image
    ],
)
def test_each_bad_line_is_dropped_and_reported(line: str, kind: str) -> None:
    kept, report = _clean("1 0.5 0.5 0.1 0.1", line)
    assert kept == ["1 0.500000 0.500000 0.100000 0.100000"]
    assert _only(report) == {kind: 1}
    [example] = report.examples[kind]  # one example, naming the image, the line and why
    where = "images/a.png: line 2: "
    assert example.startswith(where) and example != where


def test_slight_overhang_is_clipped_and_reported() -> None:
    kept, report = _clean("0 0.995 0.5 0.03 0.2", "1 0.1 0.1 0.4 0.4")
    assert kept == [
        "0 0.990000 0.500000 0.020000 0.200000",  # x in [0.98, 1.01] -> [0.98, 1]
        "1 0.150000 0.150000 0.300000 0.300000",  # x, y in [-0.1, 0.3] -> [0, 0.3]
    ]
    assert _only(report) == {"coords_clipped": 2}


def test_float_noise_is_clipped_silently() -> None:
    kept, report = _clean("0 0.5 0.5 1.0000001 1.0")
    assert kept == ["0 0.500000 0.500000 1.000000 1.000000"]
    assert _only(report) == {}


def test_report_keeps_at_most_n_examples() -> None:
    report = Report(max_examples=2)
    for i in range(5):
        report.add("too_small", f"k{i}", "x")
    assert report.counts["too_small"] == 5 and report.examples["too_small"] == ["k0: x", "k1: x"]
    assert set(report.summary()) == set(KINDS)
    assert report.describe() == "too_small=5"
    with pytest.raises(ValueError):
        report.add("nonsense", "k")


def test_coco_boxes_convert_with_the_same_policy() -> None:
    report = Report()
    assert coco_to_yolo(1, [10, 20, 30, 40], 100, 200, "k", "ann 0", report) == (
        "1 0.250000 0.200000 0.300000 0.200000"
    )
    assert coco_to_yolo(0, [90, 0, 20, 10], 100, 100, "k", "ann 1", report) == (
        "0 0.950000 0.050000 0.100000 0.100000"
    )
    assert coco_to_yolo(0, [10, 20, 30], 100, 100, "k", "ann 2", report) is None
    assert coco_to_yolo(0, [10, "x", 30, 4], 100, 100, "k", "ann 3", report) is None
    assert coco_to_yolo(0, [10, 20, 0, 4], 100, 100, "k", "ann 4", report) is None
    assert _only(report) == {
        "coords_clipped": 1,
        "wrong_field_count": 1,
        "malformed_value": 1,
        "zero_area": 1,
    }


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_checks(tmp_path: Path) -> None:
    good, tiny, text, cut = (tmp_path / n for n in ("good.png", "tiny.png", "t.png", "cut.png"))
    good.write_bytes(_png(32, 24))
    tiny.write_bytes(_png(9, 40))
    text.write_bytes(b"definitely not an image")
    cut.write_bytes(_png(64, 64)[:60])
    assert check_image(good) == check_image(good)
    assert (check_image(good).ok, check_image(good).width, check_image(good).height) == (
        True,
        32,
        24,
    )
    assert (check_image(tiny).ok, check_image(tiny).kind) == (False, "too_small")
    assert (check_image(text).ok, check_image(text).kind) == (False, "unreadable_image")
    assert (check_image(cut).ok, check_image(cut).kind) == (False, "unreadable_image")
