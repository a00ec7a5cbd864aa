"""Manifest hashing: deterministic, covering content only (no timestamps, etags, report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activities.contracts.dataset import SnapshotRef
from activities.dataset.manifest import (
    Manifest,
    ManifestImage,
    ManifestReport,
    canonical_json,
    snapshot_key,
)
from activities.dataset.materialize import dataset_dir
from activities.infra.errors import BadInputError
from activities.infra.settings import Settings


def _image(key: str, sha: str = "a" * 64, split: str = "train", **kw: object) -> ManifestImage:
    fields: dict = {"etag": "e1", "width": 32, "height": 32, "labels": ["0 0.5 0.5 0.1 0.1"]}
    fields.update(kw)
    return ManifestImage(key=key, sha256=sha, split=split, **fields)  # type: ignore[arg-type]


def _manifest(images: list[ManifestImage], **kw: object) -> Manifest:
    fields: dict = {
        "dataset": "parts",
        "bucket": "data",
        "prefix": "datasets/parts",
        "format": "yolo",
        "class_names": ["a", "b"],
        "split_ratios": {"train": 0.8, "val": 0.1, "test": 0.1},
        "counts": {"train": len(images), "val": 0, "test": 0},
        "report": ManifestReport(listed=4, unverified=0, counts={"too_small": 0}),
    }
    fields.update(kw)
    return Manifest(images=images, **fields)


def test_hash_is_deterministic_and_order_independent() -> None:
    a, b = _image("p/a.png"), _image("p/b.png", sha="b" * 64)
    first = _manifest([a, b], created_at="2024-01-01T00:00:00+00:00")
    second = _manifest([b, a], created_at="2030-06-01T12:00:00+00:00")
    assert first.sha256() == second.sha256()
    assert len(first.sha256()) == 64
    assert first.sha256() == _manifest([a, b]).sha256()


def test_hash_ignores_metadata_that_does_not_define_the_dataset() -> None:
    base = _manifest([_image("p/a.png")])
    other = _manifest(
        [_image("p/a.png", etag="e2", width=64, height=64)],
        format="coco",
        prefix="datasets/other",
        split_ratios={"train": 0.5, "val": 0.25, "test": 0.25},
        report=ManifestReport(listed=9, unverified=3, counts={"too_small": 2}),
    )
    assert base.sha256() == other.sha256()


def test_hash_changes_with_content() -> None:
    base = _manifest([_image("p/a.png")]).sha256()
    changes = [
        _manifest([_image("p/a.png", sha="c" * 64)]),
        _manifest([_image("p/a.png", split="test")]),
        _manifest([_image("p/a.png", labels=["1 0.5 0.5 0.1 0.1"])]),
        _manifest([_image("p/a.png", labels=[])]),
        _manifest([_image("p/b.png")]),
        _manifest([_image("p/a.png"), _image("p/b.png")]),
        _manifest([_image("p/a.png")], class_names=["b", "a"]),
        _manifest([_image("p/a.png")], dataset="other"),
        _manifest([_image("p/a.png")], bucket="other"),
    ]
    hashes = {m.sha256() for m in changes}
    assert base not in hashes and len(hashes) == len(changes)


def test_stored_form_round_trips_and_is_canonical() -> None:
    manifest = _manifest([_image("p/a.png")])
    data = manifest.to_bytes()
    assert data == canonical_json(json.loads(data))
    assert Manifest.model_validate_json(data) == manifest
    assert Manifest.model_validate_json(data).sha256() == manifest.sha256()
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    assert snapshot_key("parts", "f" * 64) == f"snapshots/parts/{'f' * 64}.json"


def test_dataset_dir_is_deterministic_and_refuses_unsafe_references(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    ref = SnapshotRef(dataset="parts", bucket="b", key="k", sha256="ab" * 32, class_names=["a"])
    assert dataset_dir(settings, ref) == tmp_path / "datasets" / "parts" / ("ab" * 8)
    for bad in ({"dataset": "../x"}, {"dataset": ".."}, {"sha256": "../../" + "a" * 58}):
        with pytest.raises(BadInputError):
            dataset_dir(settings, ref.model_copy(update=bad))
