"""Validation of images and YOLO label lines, with a report of what was fixed or skipped.

Label lines are ``cls cx cy w h`` (normalised). Policy, line by line:

* blank lines are ignored; a line without exactly 5 fields -> ``wrong_field_count`` (dropped);
  a non-numeric field -> ``malformed_value`` (dropped);
* a class id that is not an integer in ``[0, nc)`` -> ``class_out_of_range`` (dropped);
* NaN/inf, a negative width/height, or a box corner outside ``[-0.5, 1.5]`` (``ABSURD_MIN``,
  ``ABSURD_MAX``) -> ``coords_absurd`` (dropped);
* otherwise corners outside ``[0, 1]`` by more than ``CLIP_EPSILON`` (float noise, clipped
  silently) are clipped to the image -> ``coords_clipped`` (kept). "Slightly outside" is thus
  any overhang that is not absurd: a box drawn past the border of a partly visible object is
  what annotation tools produce, and clipping it is what Ultralytics does at load time anyway;
* a box whose clipped width or height is below ``MIN_SIDE`` -> ``zero_area`` (dropped).

Kept lines are rewritten canonically (``cls`` and four coordinates with 6 decimals), so the
same boxes always give the same manifest bytes. Images must decode completely (PIL ``verify``
then ``load``) and be at least ``MIN_IMAGE_SIDE`` pixels on each side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

ABSURD_MIN, ABSURD_MAX = -0.5, 1.5
CLIP_EPSILON = 1e-6
MIN_SIDE = 1e-6
MIN_IMAGE_SIDE = 10

KINDS: tuple[str, ...] = (
    "unreadable_image",
    "non_image_file",
    "too_small",
    "wrong_field_count",
    "malformed_value",
    "class_out_of_range",
    "coords_clipped",
    "coords_absurd",
    "zero_area",
    "label_without_image",
    "image_without_label",
    "duplicate_image",
)
"""Every finding kind, in report order. ``image_without_label`` images are kept (backgrounds);
``coords_clipped`` boxes are kept (fixed); everything else is skipped."""


@dataclass
class Report:
    """Counts per kind and up to ``max_examples`` examples (``"key: detail"``) per kind."""

    max_examples: int = 5
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, key: str, detail: str = "") -> None:
        if kind not in self.counts:
            raise ValueError(f"unknown report kind {kind!r}")
        self.counts[kind] += 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < self.max_examples:
            examples.append(f"{key}: {detail}" if detail else key)

    def summary(self) -> dict[str, int]:
        """Counts per kind (every kind present, zeros included)."""
        return dict(self.counts)

    def describe(self, limit: int = 6) -> str:
        """One line naming the non-zero kinds, for error messages and logs."""
        parts = [f"{kind}={n}" for kind, n in self.counts.items() if n]
        return ", ".join(parts[:limit]) + (", ..." if len(parts) > limit else "") or "no findings"


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of decoding one image: its size, or why it is unusable."""

    ok: bool
    width: int = 0
    height: int = 0
    kind: str = ""
    detail: str = ""


def check_image(path: Path) -> ImageCheck:
    """Decode ``path`` fully; reject unreadable files and images below ``MIN_IMAGE_SIDE``."""
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except Exception as exc:  # PIL raises many types for bad data (OSError, SyntaxError, ...)
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return ImageCheck(False, kind="unreadable_image", detail=reason)
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        return ImageCheck(
            False, width, height, "too_small", f"{width}x{height} px < {MIN_IMAGE_SIDE} px"
        )
    return ImageCheck(True, width, height)


def format_line(cls: int, cx: float, cy: float, w: float, h: float) -> str:
    """The canonical text of one box."""
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def clean_label_lines(
    lines: Iterable[str], num_classes: int, key: str, report: Report
) -> list[str]:
    """Validate YOLO label lines of image ``key``; returns the kept lines, canonical."""
    kept: list[str] = []
    for number, raw in enumerate(lines, start=1):
        fields = raw.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) != 5:
            report.add("wrong_field_count", key, f"{where}: {len(fields)} fields, expected 5")
            continue
        try:
            cls_value, cx, cy, w, h = (float(f) for f in fields)
        except ValueError:
            report.add("malformed_value", key, f"{where}: {raw.strip()[:60]!r}")
            continue
        if not (cls_value.is_integer() and 0 <= cls_value < num_classes):
            report.add(
                "class_out_of_range", key, f"{where}: class {fields[0]} not in [0, {num_classes})"
            )
            continue
        line = clean_box(int(cls_value), cx, cy, w, h, key, where, report)
        if line is not None:
            kept.append(line)
    return kept


def clean_box(
    cls: int, cx: float, cy: float, w: float, h: float, key: str, where: str, report: Report
) -> str | None:
    """Clip or drop one normalised box (see the module docstring); None when dropped."""
    values = (cx, cy, w, h)
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if (
        not all(math.isfinite(v) for v in values)
        or w < 0
        or h < 0
        or not all(ABSURD_MIN <= v <= ABSURD_MAX for v in (x0, y0, x1, y1))
    ):
        shown = " ".join(f"{v:g}" for v in values)
        report.add("coords_absurd", key, f"{where}: {shown}")
        return None
    overhang = max(-x0, -y0, x1 - 1, y1 - 1)
    x0, y0 = min(max(x0, 0.0), 1.0), min(max(y0, 0.0), 1.0)
    x1, y1 = min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0)
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        report.add("zero_area", key, f"{where}: {x1 - x0:g} x {y1 - y0:g} after clipping")
        return None
    if overhang > CLIP_EPSILON:
        report.add("coords_clipped", key, f"{where}: overhang {overhang:.4f} clipped")
    return format_line(cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def coco_to_yolo(
    cls: int, bbox: list[float], width: int, height: int, key: str, where: str, report: Report
) -> str | None:
    """COCO ``[x, y, w, h]`` in pixels -> canonical YOLO line (same clip/drop policy)."""
    if len(bbox) != 4:
        report.add("wrong_field_count", key, f"{where}: bbox has {len(bbox)} values, expected 4")
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        report.add("malformed_value", key, f"{where}: bbox {bbox!r}"[:100])
        return None
    return clean_box(
        cls, (x + w / 2) / width, (y + h / 2) / height, w / width, h / height, key, where, report
    )
