"""Validation of label lines and images: each finding kind, clipping and canonical output."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from activities.dataset.validation import (
    KINDS,
    Labels,
    Report,
    check_image,
    clean_label_lines,
)


def _clean(*lines: str, nc: int = 3) -> tuple[list[str], Report]:
    report = Report(max_examples=2)
    return clean_label_lines(lines, nc, "images/a.png", report).kept, report


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


@pytest.mark.parametrize(
    "line",
    [
        "0 0.5 0.5 1.0000001 1.0",
        "0 0.5 0.5 1.00001 1.0",  # 5 decimals: corners at -0.000005 and 1.000005
        "0 0.999995 0.5 0.00002 0.2",  # x1 = 1.000005
        "0 0.500003 0.500003 1.000006 1.000006",  # 6 decimals, both axes over the edge
        "0 0.00000 0.50000 0.00002 0.20000",  # x0 = -0.00001 written with 5 decimals
    ],
)
def test_float_noise_of_5_or_6_decimals_is_clipped_silently(line: str) -> None:
    labels = clean_label_lines([line], 3, "images/a.png", report := Report())
    (kept,) = labels.kept
    assert all(0.0 <= float(v) <= 1.0 for v in kept.split()[1:])
    assert _only(report) == {} and not labels.incomplete


def test_dropped_lines_are_named_with_their_text() -> None:
    report = Report()
    labels = clean_label_lines(
        ["0 0.5 0.5 0.2 0.2", "0 0.5 0.5 0.2", "7 0.5 0.5 0.2 0.2", ""], 3, "k", report
    )
    assert labels.kept == ["0 0.500000 0.500000 0.200000 0.200000"]
    assert labels.incomplete
    assert labels.dropped == [
        "line 2 wrong_field_count '0 0.5 0.5 0.2'",
        "line 3 class_out_of_range '7 0.5 0.5 0.2 0.2'",
    ]
    assert labels.describe_dropped().startswith("2 dropped: line 2 wrong_field_count")


def test_empty_or_blank_label_files_are_complete_backgrounds() -> None:
    for lines in ([], ["", "   "]):
        labels = clean_label_lines(lines, 3, "k", Report())
        assert labels.kept == [] and not labels.incomplete


def test_a_clipped_box_is_kept_and_leaves_the_labels_complete() -> None:
    labels = clean_label_lines(["0 0.99 0.5 0.04 0.2"], 3, "k", report := Report())
    assert labels.kept == ["0 0.985000 0.500000 0.030000 0.200000"]
    assert not labels.incomplete and _only(report) == {"coords_clipped": 1}


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
    labels = Labels("k", report)
    labels.add_coco_box(1, [10, 20, 30, 40], 100, 200, "ann 0")
    labels.add_coco_box(0, [90, 0, 20, 10], 100, 100, "ann 1")
    assert labels.kept == [
        "1 0.250000 0.200000 0.300000 0.200000",
        "0 0.950000 0.050000 0.100000 0.100000",
    ]
    assert not labels.incomplete
    labels.add_coco_box(0, [10, 20, 30], 100, 100, "ann 2")
    labels.add_coco_box(0, [10, "x", 30, 4], 100, 100, "ann 3")
    labels.add_coco_box(0, [10, 20, 0, 4], 100, 100, "ann 4")
    labels.add_coco_box(0, None, 100, 100, "ann 5")
    assert len(labels.kept) == 2 and len(labels.dropped) == 4
    assert _only(report) == {
        "coords_clipped": 1,
        "wrong_field_count": 2,
        "malformed_value": 1,
        "zero_area": 1,
    }


def test_a_category_left_out_on_purpose_does_not_make_labels_incomplete() -> None:
    labels = Labels("k", report := Report())
    labels.drop("class_not_selected", "ann 0", "category_id 9 not among the class names", "")
    assert not labels.incomplete and _only(report) == {"class_not_selected": 1}
    labels.drop("crowd_annotation", "ann 1", "crowd region (iscrowd)", "crowd region (iscrowd)")
    assert labels.incomplete


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


def test_images_over_the_pixel_cap_are_refused_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(_png(400, 300))
    assert check_image(big, max_pixels=120_000).ok
    refused = check_image(big, max_pixels=119_999)
    assert (refused.ok, refused.kind) == (False, "image_too_large")
    assert refused.detail == "400x300 px > 119999 px"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_decompression_bomb_is_a_finding_not_an_allocation(tmp_path: Path) -> None:
    """A PNG whose header claims 40000 x 40000 px (1.6 gigapixels, 4.8 GB as RGB) in a few
    dozen bytes: refused from the header, nothing decoded."""
    bomb = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 1, 0, 0, 0, 0)
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 5001 * 8))
        + _png_chunk(b"IEND", b"")
    )
    check = check_image(bomb)  # default cap: 100 megapixels
    assert (check.ok, check.kind) == (False, "image_too_large")
    huge = check_image(bomb, max_pixels=10**10)  # our cap lifted: PIL's own limit still holds
    assert (huge.ok, huge.kind) == (False, "image_too_large")
