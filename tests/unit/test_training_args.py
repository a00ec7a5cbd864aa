"""Training hyperparameters, base-model specs and OOM policy: validated before any training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import (
    ArchitectureBase,
    BaseModelSpec,
    CatalogBase,
    Hyperparameters,
    RegistryBase,
    S3Base,
    TrainRequest,
    WriteControlRequest,
)
from activities.infra.errors import BadInputError
from activities.training import args
from activities.training.oom import halved_batch, is_out_of_memory

SNAPSHOT = SnapshotRef(
    dataset="d", bucket="b", key="snapshots/d/x.json", sha256="ab" * 32, class_names=["a"]
)


@pytest.fixture(scope="module", autouse=True)
def _offline() -> None:
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"imgsz": 100}, "multiple of 32"),
        ({"imgsz": 0}, "greater than or equal to 32"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"lr0": 0}, "greater than 0"),
        ({"batch": 0}, "greater than or equal to 1"),
        ({"optimizer": "Adagrad"}, "'auto', 'SGD'"),
        ({"device": "cuda:0"}, "device must be None, 'cpu', or one GPU index like '0'"),
        ({"device": "0,1"}, "several GPUs (device='0,1') are not supported"),
        ({"extra": {"epochs": 3}}, "extra may not set epochs"),
        ({"extra": {"data": "x.yaml", "resume": True}}, "extra may not set data, resume"),
        ({"extra": {"time": 1.0}}, "extra may not set time"),
        ({"extra": {"mosaic": object()}}, "extra"),
    ],
)
def test_contract_rejects_bad_hyperparameters(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Hyperparameters(**fields)  # type: ignore[arg-type]


def test_contract_accepts_devices_and_optimizers() -> None:
    for device in (None, "cpu", "0", "3"):
        assert Hyperparameters(device=device).device == device
    assert Hyperparameters(optimizer="MuSGD", imgsz=32).optimizer == "MuSGD"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mosiac": 0.5}, "unknown Ultralytics argument 'mosiac' (did you mean 'mosaic'?)"),
        ({"totally_unknown": 1}, "unknown Ultralytics argument 'totally_unknown'"),
        ({"mosaic": 1.5}, "hyperparameters.extra['mosaic'] is invalid"),
        ({"cos_lr": 1}, "'cos_lr' must be a bool"),
        ({"warmup_epochs": "three"}, "hyperparameters.extra['warmup_epochs'] is invalid"),
        ({"hsv_h": None}, "'hsv_h=None' is invalid"),
    ],
)
def test_extra_is_checked_against_ultralytics(extra: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError) as info:
        args.validate(Hyperparameters(extra=extra))  # type: ignore[arg-type]
    assert message in str(info.value)


def test_valid_extra_passes_through_and_owned_fields_win(tmp_path: Path) -> None:
    hp = Hyperparameters(
        epochs=5, imgsz=96, batch=8, device="cpu", extra={"mosaic": 0, "cos_lr": True, "amp": True}
    )
    extra = args.validate(hp)
    assert extra["mosaic"] == 0.0 and extra["cos_lr"] is True
    kwargs = args.train_args(
        hp, extra, data=tmp_path / "data.yaml", save_dir=tmp_path / "run", batch=4, device="cpu"
    )
    assert kwargs["batch"] == 4  # the (possibly halved) batch of this attempt, not hp.batch
    assert kwargs["epochs"] == 5 and kwargs["imgsz"] == 96 and kwargs["exist_ok"] is True
    assert kwargs["save_dir"] == str(tmp_path / "run") and kwargs["plots"] is False
    assert kwargs["amp"] is True  # an explicit extra wins over the CPU default
    default = args.train_args(
        Hyperparameters(), {}, data=tmp_path, save_dir=tmp_path / "r", batch=1, device="cpu"
    )
    assert default["amp"] is False
    assert args.train_args(
        Hyperparameters(), {}, data=tmp_path, save_dir=tmp_path / "r", batch=1, device="0"
    )["amp"]


def test_resume_args_change_only_what_ultralytics_allows(tmp_path: Path) -> None:
    kwargs = args.resume_args(
        Hyperparameters(workers=2), checkpoint=tmp_path / "c.pt", data=tmp_path / "d.yaml",
        save_dir=tmp_path / "s", batch=2, device="cpu",
    )  # fmt: skip
    assert set(kwargs) == {"resume", "data", "save_dir", "batch", "device", "workers"}
    assert kwargs["resume"] == str(tmp_path / "c.pt")


def test_device_resolution_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only behaviour")
    assert args.resolve_device(None) == "cpu"
    assert args.resolve_device("cpu") == "cpu"
    with pytest.raises(Exception, match="has no CUDA GPU"):
        args.resolve_device("0")


def test_base_model_specs_are_a_tagged_union() -> None:
    adapter = TypeAdapter(BaseModelSpec)
    assert adapter.validate_python({"kind": "architecture", "name": "yolov8n.yaml"}) == (
        ArchitectureBase(name="yolov8n.yaml")
    )
    assert isinstance(adapter.validate_python({"kind": "registry", "model": "m", "version": "v1"}),
                      RegistryBase)  # fmt: skip
    s3 = adapter.validate_python(
        {"kind": "s3", "bucket": "weights", "key": "w/yolov8n.pt", "sha256": "ab" * 32}
    )
    assert isinstance(s3, S3Base) and s3.sha256 == "ab" * 32
    catalog = adapter.validate_python({"kind": "weights", "name": "yolo11n.pt"})
    assert catalog == CatalogBase(name="yolo11n.pt")
    for bad in (
        {"kind": "s3", "bucket": "weights", "key": "w/yolov8n.pt"},  # no digest: refused
        {"kind": "s3", "bucket": "weights", "key": "w/model.onnx", "sha256": "ab" * 32},
        {"kind": "s3", "bucket": "weights", "key": "../x.pt"},
        {"kind": "architecture", "name": "../../etc/x.yaml"},
        {"kind": "url", "name": "http://x"},
    ):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    assert TrainRequest(snapshot=SNAPSHOT, model_name="m").base is None  # the worker's default


def test_unknown_architecture_is_bad_input() -> None:
    from activities.training.base_model import prepare_base

    prepared = prepare_base(ArchitectureBase(name="yolov8n.yaml"), None, None)  # type: ignore[arg-type]
    assert (prepared.source, prepared.record.spec, prepared.record.sha256) == (
        "yolov8n.yaml",
        "yolov8n.yaml",
        None,
    )
    with pytest.raises(BadInputError, match=r"unknown architecture 'yolov99z\.yaml'"):
        prepare_base(ArchitectureBase(name="yolov99z.yaml"), None, None)  # type: ignore[arg-type]


def test_min_batch_cannot_exceed_batch() -> None:
    with pytest.raises(ValidationError, match="min_batch"):
        TrainRequest(
            snapshot=SNAPSHOT, model_name="m", hyperparameters=Hyperparameters(batch=4), min_batch=8
        )


def test_oom_halves_down_to_the_floor() -> None:
    assert halved_batch(16, 1) == 8
    assert halved_batch(5, 2) == 2
    with pytest.raises(BadInputError, match="below min_batch=4"):
        halved_batch(4, 4)
    with pytest.raises(BadInputError):
        halved_batch(1, 1)


def test_oom_detection() -> None:
    import torch

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize("run_id", ["../x", "a\\b", "/abs"])
def test_write_control_rejects_unsafe_run_ids(run_id: str) -> None:
    with pytest.raises(ValidationError, match="unsafe object key"):
        WriteControlRequest(run_id=run_id)


def test_several_gpus_are_refused_with_what_to_use_instead() -> None:
    """Refused at request validation (above) and again by the activity, before any CUDA
    check: a request that bypassed validation still gets a final, typed error."""
    with pytest.raises(ValidationError, match="use device='2' or leave device unset"):
        Hyperparameters(device="2,3")
    with pytest.raises(BadInputError) as info:
        args.resolve_device("0,1")
    message = str(info.value)
    assert "several GPUs (device='0,1') is not supported" in message
    assert "Train on one GPU (e.g. device='0')" in message
