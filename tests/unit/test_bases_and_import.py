"""Bases as people write them (--base, SENTINEL_DEFAULT_BASE), the CLI requests built from
them, the client-side checks of an upload, and the pure parts of an import."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.contracts.bases import (
    BASE_EXAMPLES,
    ArchitectureBase,
    BaseRecord,
    CatalogBase,
    RegistryBase,
    S3Base,
    base_text,
    parse_base,
)
from activities.contracts.registry import ImportedFrom, PublishRequest
from activities.contracts.retrain import RetrainRequest
from activities.infra.errors import ConfigurationError
from activities.infra.settings import Settings
from activities.registry.report import render_report
from tests.helpers import factories, weights_factories
from tests.helpers.registry_examples import EXAMPLES as REGISTRY_EXAMPLES
from workflows.client.cli import build_parser
from workflows.client.cli_args import request_from_args
from workflows.client.uploads import check_weights_file
from workflows.gate import import_decision
from workflows.import_model import check_weights_fit

DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yolov8s.yaml", ArchitectureBase(name="yolov8s.yaml")),
        ("weights:yolo11n-seg.pt", CatalogBase(name="yolo11n-seg.pt")),
        ("registry:detector@production", RegistryBase(model="detector", version="production")),
        ("registry:detector@3", RegistryBase(model="detector", version="3")),
        (
            f"s3://pretrained/coco/yolo11n.pt#sha256={DIGEST}",
            S3Base(bucket="pretrained", key="coco/yolo11n.pt", sha256=DIGEST),
        ),
    ],
)
def test_every_base_kind_parses_and_prints_back(text: str, expected: Any) -> None:
    assert parse_base(text) == expected
    assert base_text(expected) == text
    assert parse_base(base_text(expected)) == expected


def test_registry_without_a_model_means_the_model_being_trained() -> None:
    assert parse_base("registry:3", model="parts") == RegistryBase(model="parts", version="3")
    with pytest.raises(ValueError, match="names no model"):
        parse_base("registry:production")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3://pretrained/yolo11n.pt", "lacks its digest"),
        (f"s3://pretrained/yolo11n.pt#md5={DIGEST}", "lacks its digest"),
        (f"s3://pretrained/yolo11n.pt#sha256={DIGEST.upper()}", "lacks its digest"),
        ("s3://pretrained/yolo11n.pt#sha256=abc", "lacks its digest"),
        (f"s3://pretrained#sha256={DIGEST}", "must name a bucket and a key"),
        (f"s3://pretrained/model.onnx#sha256={DIGEST}", "must name a .pt file"),
        (f"s3://pretrained/../x.pt#sha256={DIGEST}", "unsafe object key"),
        ("weights:../secrets.pt", "invalid weights name"),
        ("weights:", "invalid weights name"),
        ("registry:Detector@3", "invalid model name"),
        ("registry:detector@", "at least 1 character"),
        ("http://example.com/yolo11n.pt", "unknown base"),
        ("yolo11n.pt", "unknown base"),
    ],
)
def test_bad_bases_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_base(text)


def test_an_s3_base_without_its_digest_is_not_a_contract() -> None:
    with pytest.raises(ValidationError, match="sha256"):
        S3Base(bucket="pretrained", key="yolo11n.pt")  # type: ignore[call-arg]


def test_the_deployment_default_base() -> None:
    from activities.training.base_model import default_base

    assert default_base(Settings()) == ArchitectureBase(name="yolov8n.yaml")
    chosen = Settings(default_base="weights:yolo11n.pt")
    assert default_base(chosen) == CatalogBase(name="yolo11n.pt")
    with pytest.raises(ConfigurationError, match="SENTINEL_DEFAULT_BASE is not a base"):
        default_base(Settings(default_base="registry:production"))


# ---------------------------------------------------------------------- the CLI
def retrain_args(*extra: str) -> Any:
    return build_parser().parse_args(["retrain", "start", *extra])


@pytest.mark.parametrize("text", BASE_EXAMPLES[:4])
def test_retrain_start_builds_each_base_kind(text: str) -> None:
    args = retrain_args("--model", "detector", "--prefix", "datasets/d", "--base", text)
    assert request_from_args(args).base == parse_base(text)


def test_retrain_start_with_an_s3_base_and_without_a_base() -> None:
    s3 = f"s3://pretrained/yolo11n.pt#sha256={DIGEST}"
    args = retrain_args("--model", "detector", "--prefix", "datasets/d", "--base", s3)
    assert request_from_args(args).base == S3Base(
        bucket="pretrained", key="yolo11n.pt", sha256=DIGEST
    )
    plain = request_from_args(retrain_args("--model", "detector", "--prefix", "datasets/d"))
    assert plain.base is None  # the workers decide (SENTINEL_DEFAULT_BASE, else yolov8n.yaml)
    old_style = retrain_args(
        "--model", "detector", "--prefix", "datasets/d", "--base", "registry:2"
    )
    assert request_from_args(old_style).base == RegistryBase(model="detector", version="2")


def test_base_flag_overrides_a_request_file(tmp_path: Path) -> None:
    request = factories.stub_retrain_request("cpu-q", "gpu-q", model="parts")
    path = tmp_path / "request.json"
    path.write_text(request.model_dump_json())
    same = request_from_args(retrain_args("--request", str(path)))
    assert same == request
    rebased = request_from_args(retrain_args("--request", str(path), "--base", "weights:a.pt"))
    assert rebased == RetrainRequest.model_validate(
        {**request.model_dump(), "base": CatalogBase(name="a.pt")}
    )
    with pytest.raises(ValueError, match="lacks its digest"):
        request_from_args(retrain_args("--request", str(path), "--base", "s3://b/k.pt"))


def test_help_shows_an_example_of_every_base_kind(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in (["retrain", "start"], ["controller", "apply"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*verb, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for example in BASE_EXAMPLES:
            assert example in text, (verb, example)


def test_import_and_weights_verbs_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["models", "import", "detector", "best.pt", "--prefix", "datasets/d", "--format", "coco"]
    )
    assert (args.model, args.file, args.prefix, args.format) == (
        "detector",
        Path("best.pt"),
        "datasets/d",
        "coco",
    )
    with pytest.raises(SystemExit):  # the data to evaluate on is required
        parser.parse_args(["models", "import", "detector", "best.pt"])
    added = parser.parse_args(["weights", "add", "yolo11n.pt", "--name", "coco-n.pt"])
    assert (added.group, added.verb, added.file, added.name) == (
        "weights",
        "add",
        Path("yolo11n.pt"),
        "coco-n.pt",
    )


# ---------------------------------------------------------------------- uploads
def test_only_torch_checkpoints_are_uploaded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        check_weights_file(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint"):
        check_weights_file(text)
    archive = tmp_path / "best.pt"
    with zipfile.ZipFile(archive, "w") as zf:  # torch.save writes a zip archive
        zf.writestr("best/data.pkl", b"\x80\x02}q\x00.")
    check_weights_file(archive)  # accepted, and nothing was unpickled


# ---------------------------------------------------------------------- import logic
def test_an_import_becomes_production_unless_one_appeared() -> None:
    candidate = factories.metrics(0.42)
    first = import_decision(candidate, None)
    assert first.promote and "0.4200" in first.reason
    late = import_decision(candidate, 2)
    assert not late.promote and "production is v2 already" in late.reason


def test_weights_must_fit_the_data() -> None:
    snapshot = factories.SNAPSHOT
    check_weights_fit(weights_factories.inspected(), snapshot, "best.pt")
    for inspected, message in [
        (weights_factories.inspected(task="pose"), "best.pt is a pose model"),
        (weights_factories.inspected(["circle", "square"]), "trained on classes"),
    ]:
        with pytest.raises(ApplicationError, match=message) as info:
            check_weights_fit(inspected, snapshot, "best.pt")
        assert (info.value.type, info.value.non_retryable) == ("BadInputError", True)


def _publish_request() -> PublishRequest:
    return next(e for e in REGISTRY_EXAMPLES if isinstance(e, PublishRequest))


def test_report_of_an_import_has_no_training_section() -> None:
    request = _publish_request().model_copy(
        update={
            "imported": ImportedFrom(file_name="best.pt", sha256=DIGEST, task="detect"),
            "epochs": 0,
            "parent_version": None,
        }
    )
    text = render_report(request, 1, request.gate, {})
    assert "- imported: `best.pt`" in text and DIGEST[:16] in text
    assert "epochs" not in text and "parent version" not in text


def test_report_of_a_retrain_names_its_base() -> None:
    base = BaseRecord(spec="weights:yolo11n.pt", sha256=DIGEST)
    request = _publish_request().model_copy(update={"base": base})
    text = render_report(request, 3, request.gate, {})
    assert f"- base: `weights:yolo11n.pt` (sha256 `{DIGEST[:16]}…`)" in text
    assert "- parent version: 2; epochs: 30" in text
