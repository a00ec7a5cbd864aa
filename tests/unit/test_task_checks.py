"""Refusals before training, on real Ultralytics models built from their yaml (no weights)."""

from __future__ import annotations

import pytest

from activities.contracts.dataset import SnapshotRef
from activities.infra.errors import BadInputError, NotFoundError
from activities.infra.yolo_env import bootstrap_offline
from activities.training.task_checks import check_architecture, check_base_model


def _snapshot(task: str, kpt_shape: list[int] | None = None) -> SnapshotRef:
    return SnapshotRef(
        dataset="shapes", bucket="b", key="snapshots/shapes/x.json", sha256="a" * 64,
        class_names=["circle", "square"], task=task, kpt_shape=kpt_shape,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(scope="module")
def pose_model():  # type: ignore[no-untyped-def]  # an ultralytics.YOLO
    bootstrap_offline()
    from ultralytics import YOLO

    return YOLO("yolov8n-pose.yaml")  # kpt_shape [17, 3], COCO's


def test_a_pose_base_is_refused_for_a_detection_dataset(pose_model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError, match="is a pose model but dataset 'shapes' is a detect"):
        check_base_model(pose_model, "registry:poses@1", _snapshot("detect"))


def test_pose_weights_with_another_kpt_shape_are_refused(pose_model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        BadInputError, match=r"kpt_shape \[17, 3\] but dataset 'shapes' has kpt_shape \[4, 3\]"
    ):
        check_base_model(pose_model, "registry:poses@1", _snapshot("pose", [4, 3]))
    check_base_model(pose_model, "registry:poses@1", _snapshot("pose", [17, 3]))


def test_an_architecture_of_another_task_is_refused() -> None:
    bootstrap_offline()
    with pytest.raises(BadInputError, match="builds a segment model but dataset 'shapes' is a obb"):
        check_architecture("yolov8n-seg.yaml", _snapshot("obb"))
    check_architecture("yolov8n-obb.yaml", _snapshot("obb"))


def test_batch_prediction_resolves_a_model_of_any_task_to_its_verified_artifact() -> None:
    from activities.predict.models import resolve
    from tests.helpers import factories

    meta = factories.model_version("masks", 3)
    meta = meta.model_copy(
        update={"snapshot": meta.snapshot.model_copy(update={"task": "segment"})}
    )

    class Registry:  # the two reads resolve makes
        bucket = "sentinel-models"

        def resolve_version(self, model: str, version: int | str) -> int:
            return 3

        def metadata(self, model: str, version: int):  # type: ignore[no-untyped-def]
            return meta

    resolved = resolve(Registry(), "masks", "production", "pytorch")  # type: ignore[arg-type]
    record = meta.artifacts["model.pt"]
    assert (resolved.version, resolved.artifact) == (3, "model.pt")
    assert (resolved.weights.key, resolved.weights.sha256) == (record.key, record.sha256)
    assert resolved.class_names == list(meta.class_names)
    assert "model.onnx" not in meta.artifacts  # this version has no ONNX file: said so
    with pytest.raises(NotFoundError, match=r"masks v3 has no model\.onnx"):
        resolve(Registry(), "masks", "production", "onnx")  # type: ignore[arg-type]
