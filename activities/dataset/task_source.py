"""The task side of an assembly: reading the layout for the request's task and the task's
own checks (classify's same content in two class folders, COCO polygons and keypoints).

Kept beside :mod:`.assemble` so that the assembly reads in the order it runs.
"""

from __future__ import annotations

from activities.contracts.dataset import AssembleRequest
from activities.dataset.classify import read_classify
from activities.dataset.coco_tasks import pose_line, pose_spec, segment_line
from activities.dataset.formats import DATA_YAML_NAMES, Candidate, Source, read_source
from activities.dataset.source import SourceAccess
from activities.dataset.tasks import TaskSpec, add_task_line, parse_task_spec
from activities.dataset.validation import ImageCheck, Labels, Report
from activities.infra.errors import BadInputError


def coco_task_lines(
    labels: Labels, candidate: Candidate, check: ImageCheck, nc: int, spec: TaskSpec
) -> None:
    """COCO polygons or keypoints as YOLO lines, validated like any line (:mod:`.coco_tasks`)."""
    width, height = candidate.coco_size or (check.width, check.height)
    for kind, where, why in candidate.coco_dropped:
        labels.drop(kind, where, why, why)
    for cls, bbox, where in candidate.coco_boxes or []:
        shape = candidate.coco_shapes.get(where, {})
        line = (
            segment_line(cls, shape, width, height)
            if spec.task == "segment"
            else pose_line(cls, bbox, shape, width, height)
        )
        if isinstance(line, tuple):
            labels.drop(line[0], where, line[1], f"{where} {line[0]}")
        else:
            add_task_line(labels, line, nc, where, spec)


def two_classes(kept: list[Candidate], shas: dict[str, str], report: Report) -> set[str]:
    """Classify: contents found in folders of two classes (every copy is left out)."""
    classes: dict[str, set[int | None]] = {}
    for candidate in kept:
        classes.setdefault(shas[candidate.rel], set()).add(candidate.class_id)
    both = {sha for sha, found in classes.items() if len(found) > 1}
    for candidate in kept:
        if shas[candidate.rel] in both:
            detail = "the same image is in another class folder too"
            report.add("image_in_two_class_folders", candidate.rel, detail)
    return both


def read_for_task(
    source: SourceAccess, request: AssembleRequest, report: Report
) -> tuple[Source, TaskSpec]:
    """The layout read for the request's task, and the task's spec (pose: from data.yaml)."""
    if request.task == "classify":
        names = request.class_names
        return read_classify(source.objects, source.fetch, names, report), TaskSpec("classify")
    if request.task in ("obb", "classify") and request.format == "coco":
        raise BadInputError(
            f"COCO has no {request.task} annotations: use the YOLO or Roboflow layout"
        )
    if request.format == "coco":
        read = read_source("coco", source.objects, source.fetch, request.class_names, report,
                           request.task)  # fmt: skip
        names = read.kpt_names
        return read, pose_spec(names) if names is not None else TaskSpec(request.task)
    found = [name for name in DATA_YAML_NAMES if name in source.objects]
    data = source.fetch(found[:1]).get(found[0]) if found and request.task == "pose" else None
    spec = parse_task_spec(request.task, data, found[0] if found else "data.yaml")
    read = read_source(request.format, source.objects, source.fetch, request.class_names, report)
    return read, spec
