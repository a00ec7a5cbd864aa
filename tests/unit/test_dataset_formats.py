"""Layout readers on in-memory listings (no server): YOLO, Roboflow, COCO, verified flags."""

from __future__ import annotations

import json
import re

import pytest

from activities.dataset.formats import label_key_for, parse_class_names, read_source
from activities.dataset.validation import Report
from activities.infra.errors import BadInputError

YAML = b"names: [cat, dog]\n"


def _read(fmt: str, files: dict[str, bytes], names: list[str] | None = None):  # type: ignore[no-untyped-def]
    report = Report()

    def fetch(rels: list[str]) -> dict[str, bytes]:
        return {rel: files[rel] for rel in rels}

    return read_source(fmt, files, fetch, names, report), report  # type: ignore[arg-type]


def test_label_key_rule() -> None:
    assert label_key_for("images/a.png") == "labels/a.txt"
    assert label_key_for("train/images/x/a.b.jpg") == "train/labels/x/a.b.txt"
    assert label_key_for("images/sub/images/a.png") == "images/sub/labels/a.txt"


def test_yolo_pairs_images_and_labels() -> None:
    files = {
        "data.yaml": YAML,
        "images/a.png": b"",
        "images/b.jpg": b"",
        "images/notes.md": b"",
        "labels/a.txt": b"0 0.5 0.5 0.1 0.1\n",
        "labels/ghost.txt": b"1 0.5 0.5 0.1 0.1\n",
        "verified.jsonl": b"",
    }
    source, report = _read("yolo", files)
    assert source.class_names == ["cat", "dog"]
    assert [(c.rel, c.label_lines, c.folder_split) for c in source.candidates] == [
        ("images/a.png", ["0 0.5 0.5 0.1 0.1"], None),
        ("images/b.jpg", None, None),
    ]
    assert report.counts["non_image_file"] == 1 and report.counts["label_without_image"] == 1
    assert report.examples["label_without_image"][0].startswith("labels/ghost.txt")


def test_class_names_given_win_and_missing_names_are_bad_input() -> None:
    source, _ = _read("yolo", {"data.yaml": YAML, "images/a.png": b""}, names=["x"])
    assert source.class_names == ["x"]
    with pytest.raises(BadInputError, match="class names unknown"):
        _read("yolo", {"images/a.png": b""})
    with pytest.raises(BadInputError, match="unknown dataset format"):
        _read("voc", {"images/a.png": b""})


def test_data_yaml_names_as_mapping() -> None:
    assert parse_class_names(b"names: {1: b, 0: a}\n", "data.yaml") == ["a", "b"]
    with pytest.raises(BadInputError, match=r"0\.\.1"):
        parse_class_names(b"names: {0: a, 2: c}\n", "data.yaml")
    with pytest.raises(BadInputError, match="no usable 'names'"):
        parse_class_names(b"nc: 2\n", "data.yaml")


def test_roboflow_keeps_its_folders() -> None:
    files = {
        "data.yaml": YAML,
        "train/images/a.png": b"",
        "valid/images/b.png": b"",
        "test/images/c.png": b"",
        "extra/images/d.png": b"",
        "test/labels/c.txt": b"1 0.5 0.5 0.2 0.2\n",
    }
    source, _ = _read("roboflow", files)
    assert {c.rel: c.folder_split for c in source.candidates} == {
        "train/images/a.png": "train",
        "valid/images/b.png": "val",
        "test/images/c.png": "test",
        "extra/images/d.png": None,
    }


def _coco(**overrides: object) -> bytes:
    doc: dict = {
        "images": [
            {"id": 1, "file_name": "images/a.png", "width": 100, "height": 50, "verified": True},
            {"id": 2, "file_name": "b.png", "width": 100, "height": 50, "verified": True},
            {"id": 3, "file_name": "images/c.png", "width": 100, "height": 50, "verified": False},
            {"id": 4, "file_name": "images/missing.png", "width": 10, "height": 10},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10], "verified": True},
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [5, 5, 10, 10]},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [1, 1, 2, 2], "verified": False},
            {"id": 4, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2]},
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_coco_classes_boxes_and_verified_flags() -> None:
    files = {
        "annotations.json": _coco(),
        "images/a.png": b"",
        "images/b.png": b"",
        "images/c.png": b"",
        "images/unlisted.png": b"",
    }
    source, report = _read("coco", files)
    assert source.class_names == ["cat", "dog"]  # category ids 3, 7 in ascending order
    by_rel = {c.rel: c for c in source.candidates}
    a = by_rel["images/a.png"]
    assert a.coco_boxes == [(1, [0, 0, 10, 10], "ann 0")]
    assert a.coco_dropped == [  # undefined category 9, a crowd region: objects without a box
        ("class_out_of_range", "ann 1", "category_id 9 not defined in 'categories'"),
        ("crowd_annotation", "ann 4", "crowd region (iscrowd)"),
    ]
    assert a.coco_size == (100, 50) and a.source_verified is True
    assert by_rel["images/b.png"].source_verified is False  # an unverified annotation
    assert by_rel["images/c.png"].source_verified is False
    assert by_rel["images/unlisted.png"].source_verified is False
    assert report.counts["label_without_image"] == 2  # missing.png and image_id 99


def test_coco_without_flags_is_all_verified_and_given_names_map_by_name() -> None:
    doc = json.loads(_coco())
    for item in [*doc["images"], *doc["annotations"]]:
        item.pop("verified", None)
    files = {"annotations.json": json.dumps(doc).encode(), "images/a.png": b""}
    source, _ = _read("coco", files, names=["dog"])
    (a,) = source.candidates
    assert a.source_verified is None
    assert a.coco_boxes == [(0, [0, 0, 10, 10], "ann 0")]
    assert [kind for kind, _, _ in a.coco_dropped] == [
        "class_out_of_range",  # category 9 is not defined at all
        "class_not_selected",  # crowd or not, 'cat' is not among the requested class names
    ]


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("images", [{"id": "1", "file_name": "images/a.png"}], "images[0].id"),
        ("images", [{"id": [1], "file_name": "images/a.png"}], "images[0].id"),
        ("images", [{"file_name": "images/a.png"}], "images[0].id"),
        ("images", [{"id": True, "file_name": "images/a.png"}], "images[0].id"),
        ("categories", [{"id": 7, "name": "dog"}, {"id": "3", "name": "cat"}], "categories[1].id"),
        ("categories", [{"id": 7.0, "name": "dog"}], "categories[0].id"),
        ("annotations", [{"image_id": {"a": 1}, "category_id": 7}], "annotations[0].image_id"),
        ("annotations", [{"image_id": 1, "category_id": [7]}], "annotations[0].category_id"),
        ("annotations", [{"image_id": 1, "category_id": None}], "annotations[0].category_id"),
    ],
)
def test_coco_ids_of_the_wrong_type_are_bad_input(field: str, value: object, where: str) -> None:
    """Unhashable or mismatched ids used to escape as a TypeError (retried as transient)."""
    files = {"annotations.json": _coco(**{field: value}), "images/a.png": b""}
    with pytest.raises(BadInputError, match=rf"annotations.json: {re.escape(where)} is .*"
                       "COCO ids must be integers"):  # fmt: skip
        _read("coco", files)


def test_coco_file_problems_are_bad_input() -> None:
    with pytest.raises(BadInputError, match="no COCO annotation file"):
        _read("coco", {"images/a.png": b""})
    with pytest.raises(BadInputError, match="not valid JSON"):
        _read("coco", {"annotations.json": b"{", "images/a.png": b""})
    with pytest.raises(BadInputError, match="no 'categories'"):
        _read("coco", {"annotations.json": _coco(categories=[]), "images/a.png": b""})
    with pytest.raises(BadInputError, match="lists of objects"):
        _read("coco", {"annotations.json": _coco(annotations=[1]), "images/a.png": b""})
    with pytest.raises(BadInputError, match="several COCO JSON"):
        _read("coco", {"a.json": b"{}", "b.json": b"{}"})


def test_verified_list_forms() -> None:
    from activities.dataset.verified import parse_verified

    data = b"\n".join(
        [
            b'{"image": "images/a.png"}',
            b'{"key": "datasets/p/images/b.png"}',
            b'{"image": "images/c.png", "verified": false}',
            b'"./images/d.png"',
            b"images/e.png",
            b"",
        ]
    )
    assert parse_verified(data, "v.jsonl", "datasets/p") == {
        "images/a.png",
        "images/b.png",
        "images/d.png",
        "images/e.png",
    }
    with pytest.raises(BadInputError, match="line 1 is not valid JSON"):
        parse_verified(b"{oops", "v.jsonl", "p")
    with pytest.raises(BadInputError, match="line 1 names no image key"):
        parse_verified(b'{"other": 1}', "v.jsonl", "p")
