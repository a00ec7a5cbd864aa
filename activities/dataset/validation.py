"""Validation of images and annotations, with a report of what was fixed or skipped.

Label lines are ``cls cx cy w h`` (normalised). Policy, line by line:

* blank lines are ignored; a line without exactly 5 fields -> ``wrong_field_count`` (dropped);
  a non-numeric field -> ``malformed_value`` (dropped);
* a class id that is not an integer in ``[0, nc)`` -> ``class_out_of_range`` (dropped);
* NaN/inf, a negative width/height, or a box corner outside ``[-0.5, 1.5]`` (``ABSURD_MIN``,
  ``ABSURD_MAX``) -> ``coords_absurd`` (dropped);
* corners outside ``[0, 1]`` by at most ``CLIP_EPSILON`` are float noise of labels written with
  5 or 6 decimals (``1.000005``): clipped silently. Beyond it they are clipped to the image ->
  ``coords_clipped`` (kept). "Slightly outside" is thus any overhang that is not absurd: a box
  drawn past the border of a partly visible object is what annotation tools produce, and
  clipping it is what Ultralytics does at load time anyway;
* a box whose clipped width or height is below ``MIN_SIDE`` -> ``zero_area`` (dropped).

COCO annotations follow the same box policy; besides, an annotation of a category the file
does not define -> ``class_out_of_range`` and a crowd region (``iscrowd``) ->
``crowd_annotation`` (both dropped), one of a category left out of the request's
``class_names`` -> ``class_not_selected`` (dropped on purpose: the model does not learn that
class, so the image stays complete).

**Labels never lie.** A dropped annotation is an object in the picture that would be
unlabelled: training would learn to miss it, and a test image would punish a correct model.
So an image with *any* dropped annotation is left out of the snapshot and reported as
``image_with_bad_labels`` (with the dropped lines) unless the request asks for the per-line
behaviour (``bad_labels="drop_lines"``: valid boxes kept, reported as ``kept_with_bad_labels``;
an image left with no valid box is still left out). Only an image without labels at all (no
label file, an empty one, a COCO image without annotations) is a background.

Kept lines are rewritten canonically (``cls`` and four coordinates with 6 decimals), so the
same boxes always give the same manifest bytes. Images must decode completely (PIL ``verify``
then ``load``), be at least ``MIN_IMAGE_SIDE`` pixels on each side and at most the configured
pixel count (``SENTINEL_MAX_IMAGE_MEGAPIXELS``: a decompression bomb is ``image_too_large``,
never an out-of-memory worker).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

ABSURD_MIN, ABSURD_MAX = -0.5, 1.5
CLIP_EPSILON = 1e-5
"""Overhang clipped silently: rounding of a corner (``cx + w/2``) of labels written with 5
decimals is at most 7.5e-6."""
MIN_SIDE = 1e-6
MIN_IMAGE_SIDE = 10
MAX_DROPPED_SHOWN = 5
"""Dropped annotations named in the report example of one image."""

KINDS: tuple[str, ...] = (
    "unreadable_image",
    "non_image_file",
    "too_small",
    "image_too_large",
    "wrong_field_count",
    "malformed_value",
    "class_out_of_range",
    "crowd_annotation",
    "class_not_selected",
    "coords_clipped",
    "coords_absurd",
    "zero_area",
    "label_without_image",
    "image_without_label",
    "image_with_bad_labels",
    "kept_with_bad_labels",
    "duplicate_image",
    # tasks other than detect (activities/dataset/tasks.py, classify.py)
    "polygon_too_few_points",
    "polygon_outside_image",
    "keypoint_count_mismatch",
    "visibility_out_of_range",
    "degenerate_rotated_box",
    "rle_mask",
    "image_in_no_class_folder",
    "image_in_two_class_folders",
    "unknown_class_folder",
)
"""Every finding kind, in report order. ``image_without_label`` images are kept (backgrounds),
``coords_clipped`` boxes are kept (fixed), ``kept_with_bad_labels`` images are kept with their
valid boxes (only with ``bad_labels="drop_lines"``); everything else is skipped."""

INCOMPLETE_KINDS = frozenset(
    {
        "wrong_field_count",
        "malformed_value",
        "class_out_of_range",
        "crowd_annotation",
        "coords_absurd",
        "zero_area",
        "polygon_too_few_points",
        "polygon_outside_image",
        "keypoint_count_mismatch",
        "visibility_out_of_range",
        "degenerate_rotated_box",
        "rle_mask",
    }
)
"""Dropped annotations that leave an object of the image unlabelled."""


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


DEFAULT_MAX_PIXELS = 100_000_000


def check_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageCheck:
    """Decode ``path`` fully; reject unreadable files, images below ``MIN_IMAGE_SIDE`` and
    images over ``max_pixels`` (read from the header, before anything is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return ImageCheck(
                        False, width, height, "image_too_large",
                        f"{width}x{height} px > {max_pixels} px",
                    )  # fmt: skip
                image.verify()
            with Image.open(path) as image:
                image.load()
    except Image.DecompressionBombError as exc:  # over PIL's own limit: never decoded
        return ImageCheck(False, kind="image_too_large", detail=str(exc)[:120])
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


@dataclass
class Labels:
    """The annotations of one image, validated: kept boxes (canonical) and dropped ones.

    Every drop is counted in ``report`` under its kind; ``dropped`` names each dropped
    annotation with its raw text, for the image-level finding (see the module docstring).
    """

    key: str
    report: Report
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def incomplete(self) -> bool:
        """Some object of the image lost its label (a dropped annotation)."""
        return bool(self.dropped)

    def describe_dropped(self) -> str:
        """The dropped annotations, for a report example (the first ``MAX_DROPPED_SHOWN``)."""
        shown = "; ".join(self.dropped[:MAX_DROPPED_SHOWN])
        more = len(self.dropped) - MAX_DROPPED_SHOWN
        return f"{len(self.dropped)} dropped: {shown}" + (f"; +{more} more" if more > 0 else "")

    def drop(self, kind: str, where: str, detail: str, raw: object) -> None:
        """Report a dropped annotation; ``INCOMPLETE_KINDS`` make the image's labels lie."""
        self.report.add(kind, self.key, f"{where}: {detail}")
        if kind in INCOMPLETE_KINDS:
            text = raw.strip() if isinstance(raw, str) else repr(raw)
            self.dropped.append(f"{where} {kind} {text[:80]!r}")

    def add_yolo_line(self, raw: str, num_classes: int, where: str) -> None:
        """One ``cls cx cy w h`` line (blank lines are ignored)."""
        fields = raw.split()
        if not fields:
            return
        if len(fields) != 5:
            self.drop("wrong_field_count", where, f"{len(fields)} fields, expected 5", raw)
            return
        try:
            cls_value, cx, cy, w, h = (float(f) for f in fields)
        except ValueError:
            self.drop("malformed_value", where, repr(raw.strip()[:60]), raw)
            return
        if not (cls_value.is_integer() and 0 <= cls_value < num_classes):
            detail = f"class {fields[0]} not in [0, {num_classes})"
            self.drop("class_out_of_range", where, detail, raw)
            return
        self.add_box(int(cls_value), cx, cy, w, h, where, raw)

    def add_coco_box(self, cls: int, bbox: Any, width: int, height: int, where: str) -> None:
        """COCO ``[x, y, w, h]`` in pixels (same clip/drop policy as YOLO lines)."""
        raw = f"bbox {bbox!r}"
        if not isinstance(bbox, list) or len(bbox) != 4:
            count = len(bbox) if isinstance(bbox, list) else 0
            self.drop("wrong_field_count", where, f"bbox has {count} values, expected 4", raw)
            return
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            self.drop("malformed_value", where, raw[:100], raw)
            return
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        self.add_box(cls, cx, cy, w / width, h / height, where, raw)

    def add_box(
        self, cls: int, cx: float, cy: float, w: float, h: float, where: str, raw: object
    ) -> None:
        """Clip, keep or drop one normalised box (see the module docstring)."""
        values = (cx, cy, w, h)
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if (
            not all(math.isfinite(v) for v in values)
            or w < 0
            or h < 0
            or not all(ABSURD_MIN <= v <= ABSURD_MAX for v in (x0, y0, x1, y1))
        ):
            self.drop("coords_absurd", where, " ".join(f"{v:g}" for v in values), raw)
            return
        overhang = max(-x0, -y0, x1 - 1, y1 - 1)
        x0, y0 = min(max(x0, 0.0), 1.0), min(max(y0, 0.0), 1.0)
        x1, y1 = min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0)
        if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
            self.drop("zero_area", where, f"{x1 - x0:g} x {y1 - y0:g} after clipping", raw)
            return
        if overhang > CLIP_EPSILON:
            self.report.add("coords_clipped", self.key, f"{where}: overhang {overhang:.4f} clipped")
        self.kept.append(format_line(cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))


def clean_label_lines(lines: Iterable[str], num_classes: int, key: str, report: Report) -> Labels:
    """Validate the YOLO label lines of image ``key`` (line numbers from 1)."""
    labels = Labels(key, report)
    for number, raw in enumerate(lines, start=1):
        labels.add_yolo_line(raw, num_classes, f"line {number}")
    return labels
