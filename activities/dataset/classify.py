"""Classification folders -> candidates: the class of an image is the folder it is in.

Layouts (keys relative to the prefix): ``{split}/{class}/*.jpg`` (``train``, ``val`` or
``valid``, ``test``: the folder's split is kept; a Roboflow classification export has this
shape) or ``{class}/*.jpg`` (the stable hash split). Class names: the request's, else
``names`` of a ``data.yaml`` at the top, else the class folders found; always in sorted order,
because Ultralytics numbers class folders alphabetically (so class ids of the snapshot and of
the trained model agree).

Findings (the image is left out): ``image_in_no_class_folder`` (directly at the top or in a
split folder), ``image_in_two_class_folders`` (nested class folders such as
``circle/square/x.jpg``; the same content in two class folders is found by the assembly),
``unknown_class_folder`` (a folder not in the class list).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from activities.dataset.formats import (
    DATA_YAML_NAMES,
    ROBOFLOW_FOLDERS,
    Candidate,
    Fetch,
    Source,
    is_image,
    parse_class_names,
)
from activities.dataset.validation import Report
from activities.infra.errors import BadInputError


def _split_and_folders(rel: str) -> tuple[str | None, list[str]]:
    parts = rel.split("/")
    if len(parts) > 1 and parts[0] in ROBOFLOW_FOLDERS:
        return parts[0], parts[1:-1]
    return None, parts[:-1]


def _names(
    objects: Mapping[str, object], fetch: Fetch, given: list[str] | None, images: list[str]
) -> list[str]:
    if given:
        return sorted(given)
    found = [name for name in DATA_YAML_NAMES if name in objects]
    if found:
        return sorted(parse_class_names(fetch([found[0]])[found[0]], found[0]))
    folders = {folders[0] for _, folders in map(_split_and_folders, images) if folders}
    if not folders:
        raise BadInputError(
            "no class folders: a classification dataset keeps its images in {class}/ or "
            "{split}/{class}/ folders"
        )
    return sorted(folders)


def read_classify(
    objects: Mapping[str, object], fetch: Fetch, class_names: list[str] | None, report: Report
) -> Source:
    """Candidates of a classification layout, each with its class id (see the module doc)."""
    images = []
    for rel in sorted(objects):
        if is_image(rel):
            images.append(rel)
        elif not rel.endswith((".yaml", ".yml", ".jsonl", ".json", ".txt")):
            report.add("non_image_file", rel, f"suffix {PurePosixPath(rel).suffix!r}")
    names = _names(objects, fetch, class_names, images)
    index = {name: i for i, name in enumerate(names)}
    source = Source(names)
    for rel in images:
        split, folders = _split_and_folders(rel)
        if not folders:
            report.add("image_in_no_class_folder", rel, "not inside a class folder")
            continue
        classes = [f for f in folders if f in index]
        if len(classes) > 1:
            report.add("image_in_two_class_folders", rel, f"folders {classes}")
            continue
        if len(folders) > 1 or folders[0] not in index:
            report.add("unknown_class_folder", rel, f"folder {'/'.join(folders)!r} not in {names}")
            continue
        source.candidates.append(
            Candidate(
                rel,
                folder_split=ROBOFLOW_FOLDERS[split] if split else None,
                class_id=index[folders[0]],
            )
        )
    return source
