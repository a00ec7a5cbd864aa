"""Source layouts -> one in-memory list of candidate images with their raw annotations.

* ``yolo``: images under an ``images/`` folder, labels at the same path under ``labels/``
  with ``.txt`` (the Ultralytics rule), class names from ``data.yaml`` at the top.
* ``roboflow``: the same inside ``train/``, ``valid/`` and ``test/`` folders, whose split is
  kept (``valid`` -> ``val``); class names from ``data.yaml``.
* ``coco``: one COCO JSON (``annotations.json`` at the top, or the only ``*.json``) whose
  ``file_name`` is relative to the prefix (or to ``images/``, or a unique base name); category
  ids in ascending order become class ids. Images listed in S3 but not in the JSON are not
  annotated and count as unverified. Ids (image, category, an annotation's ``image_id`` and
  ``category_id``) must be integers (BadInputError naming the first bad one). Annotations the
  reader cannot turn into a box (undefined category, crowd region, a category left out of the
  requested class names) are recorded on the image (``coco_dropped``) for validation to
  judge (:mod:`activities.dataset.validation`).

Readers work on keys relative to the dataset prefix and a ``fetch`` callable that returns the
bytes of several small objects at once, so they are testable without a server.

Over 300 lines on purpose: the three layouts share their rules (image suffixes, label paths,
class names, candidates) and read best side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from activities.contracts.dataset import DatasetFormat, SplitName
from activities.dataset.validation import Report
from activities.infra.errors import BadInputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
ROBOFLOW_FOLDERS: dict[str, SplitName] = {
    "train": "train",
    "valid": "val",
    "val": "val",
    "test": "test",
}
DATA_YAML_NAMES = ("data.yaml", "data.yml")

Fetch = Callable[[list[str]], dict[str, bytes]]


@dataclass
class Candidate:
    """One image of the source with whatever annotates it (before validation)."""

    rel: str
    label_lines: list[str] | None = None  # YOLO lines; None when no label file exists
    coco_boxes: list[tuple[int, Any, str]] | None = None  # (class, raw bbox, where)
    coco_dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, where, why)
    coco_size: tuple[int, int] | None = None
    folder_split: SplitName | None = None
    source_verified: bool | None = None  # COCO flags; None = the source has no opinion
    class_id: int | None = None  # classify: the class of the image's folder
    coco_shapes: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> seg/kpts


@dataclass
class Source:
    """Everything a reader found under the prefix."""

    class_names: list[str]
    candidates: list[Candidate] = field(default_factory=list)
    kpt_names: list[str] | None = None  # COCO pose: the categories' keypoint names


def read_source(
    fmt: DatasetFormat,
    objects: Mapping[str, object],
    fetch: Fetch,
    class_names: list[str] | None,
    report: Report,
    task: str = "detect",
) -> Source:
    """Read the layout ``fmt`` from ``objects`` (relative key -> info) into a :class:`Source`.

    ``task``: for COCO, segment and pose keep each annotation's ``segmentation`` or
    ``keypoints`` (:mod:`.coco_tasks` turns them into label lines).
    """
    if fmt in ("yolo", "roboflow"):
        return _read_yolo(objects, fetch, class_names, report, roboflow=fmt == "roboflow")
    if fmt == "coco":
        return _read_coco(objects, fetch, class_names, report, task)
    raise BadInputError(f"unknown dataset format {fmt!r}: use 'yolo', 'coco' or 'roboflow'")


def is_image(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES


def label_key_for(rel: str) -> str:
    """``a/images/b/x.png`` -> ``a/labels/b/x.txt`` (last ``images`` segment, as Ultralytics)."""
    parts = rel.split("/")
    index = len(parts) - 2 - parts[-2::-1].index("images")
    parts[index] = "labels"
    return str(PurePosixPath(*parts).with_suffix(".txt"))


def parse_class_names(data: bytes, where: str) -> list[str]:
    """Class names from a ``data.yaml`` (``names`` as a list or an ``{id: name}`` mapping)."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise BadInputError(f"{where}: 'names' keys must be class ids") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise BadInputError(f"{where}: class ids in 'names' must be 0..{len(by_id) - 1}")
        names = [by_id[i] for i in range(len(by_id))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BadInputError(f"{where} has no usable 'names' list (class names in id order)")
    return names


def _class_names_from_yaml(
    objects: Mapping[str, object], fetch: Fetch, given: list[str] | None
) -> list[str]:
    if given:
        return list(given)
    found = [name for name in DATA_YAML_NAMES if name in objects]
    if not found:
        raise BadInputError(
            "class names unknown: no data.yaml at the top of the prefix; add one or pass "
            "class_names in the request"
        )
    return parse_class_names(fetch([found[0]])[found[0]], found[0])


def _read_yolo(
    objects: Mapping[str, object],
    fetch: Fetch,
    class_names: list[str] | None,
    report: Report,
    *,
    roboflow: bool,
) -> Source:
    names = _class_names_from_yaml(objects, fetch, class_names)
    images: list[str] = []
    labels = {rel for rel in objects if rel.endswith(".txt") and "labels" in rel.split("/")[:-1]}
    for rel in sorted(objects):
        if "images" not in rel.split("/")[:-1]:
            continue
        if is_image(rel):
            images.append(rel)
        else:
            report.add("non_image_file", rel, f"suffix {PurePosixPath(rel).suffix!r}")
    wanted = {rel: label_key_for(rel) for rel in images}
    texts = fetch(sorted({lab for lab in wanted.values() if lab in labels}))
    source = Source(names)
    for rel in images:
        raw = texts.get(wanted[rel])
        lines = None if raw is None else raw.decode("utf-8", errors="replace").splitlines()
        folder = ROBOFLOW_FOLDERS.get(rel.split("/", 1)[0]) if roboflow else None
        source.candidates.append(Candidate(rel, label_lines=lines, folder_split=folder))
    for label in sorted(labels - set(wanted.values())):
        report.add("label_without_image", label, "no image for this label file")
    return source


def _find_coco_json(objects: Mapping[str, object]) -> str:
    if "annotations.json" in objects:
        return "annotations.json"
    found = sorted(
        rel for rel in objects if rel.endswith(".json") and "images" not in rel.split("/")[:-1]
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise BadInputError("no COCO annotation file: expected annotations.json under the prefix")
    raise BadInputError(
        f"several COCO JSON files {found[:5]}: keep one or name it annotations.json"
    )


def _resolve(file_name: str, objects: Mapping[str, object], by_base: dict[str, list[str]]) -> str:
    name = file_name.removeprefix("./").lstrip("/")
    for rel in (name, f"images/{name}"):
        if rel in objects:
            return rel
    matches = by_base.get(PurePosixPath(name).name, [])
    return matches[0] if len(matches) == 1 else ""


def coco_id(value: object, where: str) -> int:
    """A COCO id (``where`` names the field in messages): an integer, else BadInputError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInputError(
            f"{where} is {value!r} ({type(value).__name__}): COCO ids must be integers"
        )
    return value


def _coco_classes(
    doc: dict[str, Any], given: list[str] | None, where: str
) -> tuple[list[str], dict[int, int | None]]:
    """Class names, and category id -> class id (None: a category left out of ``given``)."""
    categories = doc.get("categories")
    if not isinstance(categories, list) or not categories:
        raise BadInputError(f"{where} has no 'categories'")
    if not all(isinstance(c, dict) and "id" in c and "name" in c for c in categories):
        raise BadInputError(f"{where}: every category needs an 'id' and a 'name'")
    ids = [coco_id(c["id"], f"{where}: categories[{n}].id") for n, c in enumerate(categories)]
    ordered = sorted(zip(ids, categories, strict=True), key=lambda pair: pair[0])
    cat_names = [str(c["name"]) for _, c in ordered]
    names = list(given) if given else cat_names
    index = {n: i for i, n in enumerate(names)}
    return names, {cid: index.get(str(c["name"])) for cid, c in ordered}


def _load_coco(
    where: str, fetch: Fetch, class_names: list[str] | None
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str], dict[int, int | None]]:
    """The COCO document at ``where``, checked for shape: ``doc, annotations, names, class_of``."""
    try:
        doc = json.loads(fetch([where])[where])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise BadInputError(f"{where} is not a COCO file: no 'images' list")
    names, class_of = _coco_classes(doc, class_names, where)
    annotations = doc.get("annotations") or []
    if not isinstance(annotations, list) or not all(
        isinstance(item, dict) for item in [*doc["images"], *annotations]
    ):
        raise BadInputError(f"{where}: 'images' and 'annotations' must be lists of objects")
    return doc, annotations, names, class_of


def _coco_images(
    entries: list[dict[str, Any]], objects: Mapping[str, object], report: Report, where: str
) -> tuple[dict[int, Candidate], dict[int, list[bool]]]:
    """Candidates by COCO image id (stored images only), and each image's verified flags."""
    by_base: dict[str, list[str]] = {}
    for rel in sorted(objects):
        if is_image(rel):
            by_base.setdefault(PurePosixPath(rel).name, []).append(rel)
        elif "images" in rel.split("/")[:-1]:
            report.add("non_image_file", rel, f"suffix {PurePosixPath(rel).suffix!r}")
    by_id: dict[int, Candidate] = {}
    flags: dict[int, list[bool]] = {}
    seen: set[str] = set()
    for number, entry in enumerate(entries):
        image_id = coco_id(entry.get("id"), f"{where}: images[{number}].id")
        rel = _resolve(str(entry.get("file_name", "")), objects, by_base)
        if not rel:
            report.add("label_without_image", str(entry.get("file_name")), "image not in storage")
            continue
        if rel in seen:
            continue  # listed twice: the first entry wins
        seen.add(rel)
        width, height = entry.get("width"), entry.get("height")
        size: tuple[int, int] | None = None
        if isinstance(width, int) and width > 0 and isinstance(height, int) and height > 0:
            size = (width, height)
        candidate = Candidate(rel, coco_boxes=[], coco_size=size)
        by_id[image_id] = candidate
        flags[image_id] = [bool(entry["verified"])] if "verified" in entry else []
    return by_id, flags


def _annotate(
    candidate: Candidate,
    ann: dict[str, Any],
    class_of: dict[int, int | None],
    where: str,
    number: int,
    keep: bool = False,
) -> None:
    """Add annotation ``number`` to ``candidate``: a box, or the reason it is not one."""
    tag = f"ann {number}"
    category = coco_id(ann.get("category_id"), f"{where}: annotations[{number}].category_id")
    if category not in class_of:
        reason = f"category_id {category} not defined in 'categories'"
        candidate.coco_dropped.append(("class_out_of_range", tag, reason))
        return
    cls = class_of[category]
    if cls is None:
        reason = f"category_id {category} not among the class names"
        candidate.coco_dropped.append(("class_not_selected", tag, reason))
        return
    if ann.get("iscrowd"):  # one region for many objects: no box per object
        candidate.coco_dropped.append(("crowd_annotation", tag, "crowd region (iscrowd)"))
        return
    boxes = candidate.coco_boxes
    assert boxes is not None  # every COCO candidate is created with a list (_coco_images)
    boxes.append((cls, ann.get("bbox"), tag))
    if keep:
        candidate.coco_shapes[tag] = {k: ann.get(k) for k in ("segmentation", "keypoints")}


def _read_coco(
    objects: Mapping[str, object],
    fetch: Fetch,
    class_names: list[str] | None,
    report: Report,
    task: str = "detect",
) -> Source:
    where = _find_coco_json(objects)
    doc, annotations, names, class_of = _load_coco(where, fetch, class_names)
    flagged = any("verified" in item for item in [*doc["images"], *annotations])
    by_id, flags = _coco_images(doc["images"], objects, report, where)
    for number, ann in enumerate(annotations):
        image_id = coco_id(ann.get("image_id"), f"{where}: annotations[{number}].image_id")
        candidate = by_id.get(image_id)
        if candidate is None:
            report.add(
                "label_without_image",
                f"{where}#annotations[{number}]",
                f"image_id {image_id} not among the images",
            )
            continue
        if "verified" in ann:
            flags[image_id].append(bool(ann["verified"]))
        _annotate(candidate, ann, class_of, where, number, keep=task != "detect")
    source = Source(names)
    if task == "pose":
        found = {tuple(c.get("keypoints") or ()) for c in doc["categories"]}
        if len(found) != 1 or not next(iter(found)):
            raise BadInputError(
                f"{where}: a COCO keypoints file needs the same non-empty 'keypoints' list in "
                f"every category (found {len(found)} different lists)"
            )
        source.kpt_names = [str(n) for n in next(iter(found))]
    for image_id, candidate in by_id.items():
        if flagged:
            marks = flags[image_id]
            candidate.source_verified = bool(marks) and all(marks)
        source.candidates.append(candidate)
    listed = {c.rel for c in source.candidates}
    for rel in sorted(objects):
        if is_image(rel) and rel not in listed:
            source.candidates.append(Candidate(rel, source_verified=False))
    source.candidates.sort(key=lambda c: c.rel)
    return source
