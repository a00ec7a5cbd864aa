"""Label lines of every task: what a valid annotation is, and its canonical text.

Line formats (normalised coordinates, as Ultralytics reads them):

* ``detect``: ``cls cx cy w h`` (:mod:`activities.dataset.validation`);
* ``segment``: ``cls x1 y1 ... xn yn``, a polygon of at least 3 points. Fewer ->
  ``polygon_too_few_points``; an odd number of coordinates -> ``wrong_field_count``; a point
  far outside (beyond ``[ABSURD_MIN, ABSURD_MAX]``) or a polygon with nothing inside the image
  (zero area once clipped) -> ``polygon_outside_image``; points slightly outside are clipped
  to the image, as boxes are (``coords_clipped`` beyond ``CLIP_EPSILON``, kept);
* ``pose``: ``cls cx cy w h`` then ``kpt_shape[0]`` keypoints of ``kpt_shape[1]`` values
  (``x y`` or ``x y v``). Another count -> ``keypoint_count_mismatch``; a visibility not in
  {0, 1, 2} -> ``visibility_out_of_range``; the box follows the detect policy;
* ``obb``: ``cls x1 y1 x2 y2 x3 y3 x4 y4``, four corners. Another count ->
  ``wrong_field_count``; corners outside ``[ABSURD_MIN, ABSURD_MAX]`` -> ``coords_absurd``;
  an area below ``MIN_OBB_AREA`` (collinear or repeated corners) -> ``degenerate_rotated_box``;
* ``classify``: no lines; the class is the image's folder (:mod:`.classify`), kept as one line
  holding the class id.

Every dropped annotation above leaves an object unlabelled, so the image-level policy of
:mod:`activities.dataset.validation` ("labels never lie") holds for every task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from activities.contracts.tasks import Task
from activities.dataset.validation import ABSURD_MAX, ABSURD_MIN, CLIP_EPSILON, Labels
from activities.infra.errors import BadInputError

MIN_OBB_AREA = 1e-6
"""Smallest rotated box area (normalised) that is a box and not a line or a point."""


@dataclass(frozen=True)
class TaskSpec:
    """The task of an assembly and what its labels need (pose: ``kpt_shape``, ``flip_idx``)."""

    task: Task = "detect"
    kpt_shape: tuple[int, int] | None = None
    flip_idx: tuple[int, ...] | None = None


def parse_task_spec(task: Task, data: bytes | None, where: str) -> TaskSpec:
    """The spec of ``task`` from a ``data.yaml`` (pose needs ``kpt_shape``; BadInputError)."""
    if task != "pose":
        return TaskSpec(task)
    if data is None:
        raise BadInputError(
            "a pose dataset needs a data.yaml at the top of the prefix with kpt_shape "
            "(e.g. [4, 3]) and optionally flip_idx"
        )
    doc = yaml.safe_load(data)
    shape = doc.get("kpt_shape") if isinstance(doc, dict) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        or shape[0] < 1
        or shape[1] not in (2, 3)
    ):
        raise BadInputError(
            f"{where}: kpt_shape must be [keypoints, 2 or 3] (e.g. [4, 3]), got {shape!r}"
        )
    flip = doc.get("flip_idx")
    if flip is not None and (not isinstance(flip, list) or sorted(flip) != list(range(shape[0]))):
        raise BadInputError(
            f"{where}: flip_idx must be a permutation of 0..{shape[0] - 1}, got {flip!r}"
        )
    return TaskSpec("pose", (shape[0], shape[1]), tuple(flip) if flip is not None else None)


def _floats(labels: Labels, fields: list[str], where: str, raw: str) -> list[float] | None:
    try:
        values = [float(f) for f in fields]
    except ValueError:
        labels.drop("malformed_value", where, repr(raw.strip()[:60]), raw)
        return None
    if not all(math.isfinite(v) for v in values):
        labels.drop("coords_absurd", where, "NaN or inf", raw)
        return None
    return values


def _class_id(labels: Labels, text: str, nc: int, where: str, raw: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        labels.drop("malformed_value", where, repr(raw.strip()[:60]), raw)
        return None
    if not (value.is_integer() and 0 <= value < nc):
        labels.drop("class_out_of_range", where, f"class {text} not in [0, {nc})", raw)
        return None
    return int(value)


def _area(xs: list[float], ys: list[float]) -> float:
    """Shoelace area of the polygon ``xs, ys``."""
    n = len(xs)
    return 0.5 * abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n)))


def _segment(labels: Labels, cls: int, fields: list[str], where: str, raw: str) -> None:
    if len(fields) % 2:
        labels.drop("wrong_field_count", where, f"{len(fields)} coordinates (odd)", raw)
        return
    if len(fields) < 6:
        detail = f"{len(fields) // 2} points, a polygon needs 3"
        labels.drop("polygon_too_few_points", where, detail, raw)
        return
    values = _floats(labels, fields, where, raw)
    if values is None:
        return
    if any(not ABSURD_MIN <= v <= ABSURD_MAX for v in values):
        worst = max(values, key=lambda v: max(-v, v - 1))
        labels.drop("polygon_outside_image", where, f"coordinate {worst:g} far outside", raw)
        return
    clipped = [min(max(v, 0.0), 1.0) for v in values]
    if _area(clipped[0::2], clipped[1::2]) < MIN_OBB_AREA:
        labels.drop("polygon_outside_image", where, "nothing of it inside the image", raw)
        return
    overhang = max(max(-v, v - 1) for v in values)
    if overhang > CLIP_EPSILON:
        labels.report.add("coords_clipped", labels.key, f"{where}: overhang {overhang:.4f} clipped")
    labels.kept.append(f"{cls} " + " ".join(f"{v:.6f}" for v in clipped))


def _box_text(labels: Labels, cls: int, box: list[float], where: str, raw: str) -> str | None:
    """The canonical box of a pose line (detect policy), or None when it was dropped."""
    before = len(labels.kept)
    cx, cy, w, h = box
    labels.add_box(cls, cx, cy, w, h, where, raw)
    return labels.kept.pop() if len(labels.kept) > before else None


def _pose(
    labels: Labels, cls: int, fields: list[str], where: str, raw: str, spec: TaskSpec
) -> None:
    assert spec.kpt_shape is not None  # parse_task_spec requires it for pose
    count, dims = spec.kpt_shape
    if len(fields) != 4 + count * dims:
        detail = f"{(len(fields) - 4) / dims:g} keypoints of {dims} values, kpt_shape says {count}"
        labels.drop("keypoint_count_mismatch", where, detail, raw)
        return
    values = _floats(labels, fields, where, raw)
    if values is None:
        return
    points = values[4:]
    if dims == 3:
        flags = points[2::3]
        bad = [v for v in flags if v not in (0.0, 1.0, 2.0)]
        if bad:
            detail = f"visibility {bad[0]:g} not in 0, 1, 2"
            labels.drop("visibility_out_of_range", where, detail, raw)
            return
    coords = [v for i, v in enumerate(points) if i % dims < 2]
    if any(not ABSURD_MIN <= v <= ABSURD_MAX for v in coords):
        labels.drop("coords_absurd", where, "keypoint far outside the image", raw)
        return
    box = _box_text(labels, cls, values[:4], where, raw)
    if box is None:
        return
    kpts = []
    for i in range(count):
        x, y = points[i * dims], points[i * dims + 1]
        kpts += [f"{min(max(x, 0.0), 1.0):.6f}", f"{min(max(y, 0.0), 1.0):.6f}"]
        if dims == 3:
            kpts.append(f"{points[i * dims + 2]:g}")
    labels.kept.append(f"{box} {' '.join(kpts)}")


def _obb(labels: Labels, cls: int, fields: list[str], where: str, raw: str) -> None:
    if len(fields) != 8:
        labels.drop("wrong_field_count", where, f"{len(fields) + 1} fields, expected 9", raw)
        return
    values = _floats(labels, fields, where, raw)
    if values is None:
        return
    if any(not ABSURD_MIN <= v <= ABSURD_MAX for v in values):
        labels.drop("coords_absurd", where, " ".join(f"{v:g}" for v in values), raw)
        return
    area = _area(values[0::2], values[1::2])
    if area < MIN_OBB_AREA:
        labels.drop("degenerate_rotated_box", where, f"area {area:.3g}", raw)
        return
    labels.kept.append(f"{cls} " + " ".join(f"{v:.6f}" for v in values))


def add_task_line(labels: Labels, raw: str, nc: int, where: str, spec: TaskSpec) -> None:
    """Validate one label line of ``spec.task`` into ``labels`` (blank lines ignored)."""
    if spec.task == "detect":
        labels.add_yolo_line(raw, nc, where)
        return
    fields = raw.split()
    if not fields:
        return
    cls = _class_id(labels, fields[0], nc, where, raw)
    if cls is None:
        return
    if spec.task == "segment":
        _segment(labels, cls, fields[1:], where, raw)
    elif spec.task == "pose":
        _pose(labels, cls, fields[1:], where, raw, spec)
    elif spec.task == "obb":
        _obb(labels, cls, fields[1:], where, raw)
    else:
        raise BadInputError(f"classification labels come from folders, not lines ({where})")
