"""Evidence, the per-class gate and taking models out, on the real stack (real Temporal, real
S3 over HTTP, real tiny Ultralytics training).

One scenario per module: ``v1`` is trained from scratch on synthetic shapes (three classes)
and promoted; ``v2`` is trained the same way on the same images with every triangle label
removed (the common failure of retraining on new data: a class missing from the new labels),
and evaluated against v1 on the same golden test set, which keeps its 11 triangles. The
gate's overall rule is set to accept any overall loss, so only the per-class rule (default
tolerance and minimum instances) can refuse v2. (Fine-tuning v1 on the same data instead
damages the other classes too on this tiny set: measured, not used.)
The versions' reports, ``sentinel models report`` and ``models pull`` are checked on them.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.contracts.dataset import SplitRatios
from activities.contracts.evaluation import EvaluationOptions
from activities.contracts.gate import GatePolicy
from activities.contracts.registry import ModelVersion
from activities.contracts.retrain import RetrainRequest, RetrainResult
from activities.evaluation.pictures import GAP, PANEL_MIN, TITLE_HEIGHT
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry.core import Registry
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import assemble_request, tiny_retrain_request, unique_model
from tests.helpers.stack import Queues, unique_queues
from workers.dev import synthetic
from workflows.client import SentinelClient
from workflows.retrain import RetrainWorkflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TRIANGLE = synthetic.CLASS_NAMES.index("triangle")
TEST_IMAGES = 16


@dataclass(frozen=True)
class Scenario:
    """The two runs of the module, and what the tests need to inspect them."""

    model: str
    queues: Queues
    sentinel: SentinelClient
    v1: RetrainResult
    v2: RetrainResult
    v1_meta: ModelVersion
    v2_meta: ModelVersion
    v2_history: WorkflowHistory


def _upload(store: ObjectStore, bucket: str, prefix: str, *, drop: int | None) -> None:
    """32 training images (labels of class ``drop`` removed) and the golden test set."""

    def without(image: synthetic.SyntheticImage) -> synthetic.SyntheticImage:
        kept = [line for line in image.labels if not line.startswith(f"{drop} ")]
        return replace(image, labels=kept)

    train = [without(i) if drop is not None else i for i in synthetic.generate(32, seed=21)]
    items = [("data.yaml", synthetic.data_yaml())]
    for folder, images in (("", train), ("golden/", synthetic.generate(TEST_IMAGES, seed=22))):
        for image in images:
            items.append((f"images/{folder}{image.stem}.png", image.png))
            items.append((f"labels/{folder}{image.stem}.txt", image.label_text.encode()))
    for key, data in items:
        store.put_bytes(bucket, f"{prefix}/{key}", data)


def _request(
    prefix: str, queues: Queues, model: str, epochs: int, **updates: object
) -> RetrainRequest:
    """A tiny real run whose test split is the golden set alone."""
    dataset = assemble_request(
        model,
        prefix,
        split_ratios=SplitRatios(train=0.8, val=0.2, test=0.0),
        test_prefix="images/golden/",
    )
    request = tiny_retrain_request(prefix, queues, epochs=epochs, model=model, **updates)
    evaluation = EvaluationOptions(bootstrap_resamples=200, evidence_images=3)
    return RetrainRequest.model_validate(
        {**request.model_dump(), "dataset": dataset.model_dump(), "evaluation": evaluation}
    )


@pytest.fixture(scope="module")
async def scenario(
    client: Client, settings: Settings, store: ObjectStore
) -> AsyncIterator[Scenario]:
    from workers.factory import build_worker

    tag = uuid.uuid4().hex[:6]
    full, collapsed = f"datasets/evidence-{tag}", f"datasets/evidence-{tag}-no-triangles"
    _upload(store, settings.data_bucket, full, drop=None)
    _upload(store, settings.data_bucket, collapsed, drop=TRIANGLE)
    queues = unique_queues(settings, "evidence")
    sentinel = SentinelClient(client, queues.settings)
    model = unique_model("ev")
    workers = [build_worker(client, queues.settings, k, store=store) for k in ("cpu", "gpu")]
    async with workers[0], workers[1]:
        await sentinel.start_retrain(_request(full, queues, model, epochs=30))
        v1 = await sentinel.result(model)
        without_triangles = _request(
            collapsed, queues, model, epochs=30, gate=GatePolicy(min_improvement=-1.0)
        )
        await sentinel.start_retrain(without_triangles)
        v2 = await sentinel.result(model)
        history = await sentinel.handle(model).fetch_history()
        registry = Registry(store, settings.models_bucket)
        yield Scenario(
            model,
            queues,
            sentinel,
            v1,
            v2,
            registry.metadata(model, v1.version),
            registry.metadata(model, v2.version),
            history,
        )


def s3_sha256(store: ObjectStore, bucket: str, key: str) -> str:
    """sha256 of the bytes S3 returns for ``key``, fetched without our verified store."""
    response = store.client.get_object(bucket, key)
    try:
        return hashlib.sha256(response.read()).hexdigest()
    finally:
        response.close()
        response.release_conn()


def panel_size(side: int) -> int:
    """Side of a picture panel of a square ``side`` px test image (enlarged to PANEL_MIN)."""
    return max(side, PANEL_MIN)


# ---------------------------------------------------------------------- the per-class gate
async def test_v2_that_forgets_a_class_is_refused_naming_the_class(scenario: Scenario) -> None:
    v1, v2, meta = scenario.v1, scenario.v2, scenario.v2_meta
    assert (v1.version, v1.promoted, v1.champion_version) == (1, True, None)
    assert (v2.version, v2.promoted, v2.production_version) == (2, False, 1)
    assert v2.champion_version == 1
    assert v2.reason.startswith("not promoted: class 'triangle' AP50-95 ")
    assert "loses more than the per-class tolerance 0.0500" in v2.reason
    (loss,) = meta.gate.class_losses
    assert (loss.name, loss.instances) == ("triangle", 11)
    assert loss.champion_ap50_95 > loss.candidate_ap50_95 + 0.05
    assert loss.ci_high is not None and loss.ci_high < 0
    assert f"{loss.champion_ap50_95:.4f} -> {loss.candidate_ap50_95:.4f}" in v2.reason
    assert meta.per_class_ci["triangle"].high == loss.ci_high
    assert "(overall: promoted:" in v2.reason  # the overall rule alone would have promoted
    # The run replays on the current code (the per-class patch recorded in its history).
    await Replayer(
        workflows=[RetrainWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(scenario.v2_history)


# ---------------------------------------------------------------------- evidence in the registry
async def test_report_of_a_real_version_holds_plots_curves_and_side_by_side_pictures(
    scenario: Scenario, store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    meta = scenario.v2_meta
    evidence = {name for name in meta.artifacts if name.startswith("evidence/")}
    plots = {"confusion_matrix_normalized.png", "PR_curve.png", "F1_curve.png", "results.png"}
    assert {f"evidence/{p}" for p in plots} <= evidence
    comparison = meta.comparison
    assert comparison is not None and comparison.images == TEST_IMAGES
    assert comparison.worse >= 1 and 1 <= len(comparison.worst) <= 3
    pictures = [e.picture for e in comparison.worst + comparison.best]
    assert all(pictures) and {f"evidence/{p}" for p in pictures} <= evidence
    for name in sorted(evidence):
        record = meta.artifacts[name]
        path = tmp_path / name
        store.get_file(settings.models_bucket, record.key, path, expected_sha256=record.sha256)
        with Image.open(path) as image:
            assert image.format == "PNG"
            width, height = image.size
        if name.removeprefix("evidence/") in plots:
            assert width >= 1000 and height >= 600, (name, image.size)  # Ultralytics' dpi
        else:  # candidate | champion | ground truth of a 96 px test image
            side = panel_size(96)
            assert (width, height) == (3 * side + 2 * GAP, TITLE_HEIGHT + side), name
    report = store.get_bytes(settings.models_bucket, meta.artifacts["report.md"].key).decode()
    linked = set(re.findall(r"\]\((evidence/[^)]+)\)", report))
    assert linked == evidence  # every picture is shown, every link resolves beside the report
    assert "| `triangle` |" in report and "**LOST: refused**" in report
    assert "## Image by image: candidate vs champion v1" in report
    assert comparison.worst[0].image in report
    # v1 had no champion: plots and training curves, no comparison
    v1_evidence = {n for n in scenario.v1_meta.artifacts if n.startswith("evidence/")}
    assert v1_evidence == {f"evidence/{p}" for p in plots}
    assert scenario.v1_meta.comparison is None


# ---------------------------------------------------------------------- taking files out
async def test_models_report_writes_the_report_and_its_pictures_verified(
    scenario: Scenario, store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "v2-report"
    code, stdout, stderr = await sentinel_cli(
        scenario.queues, "models", "report", scenario.model, "--version", "2", "--out", str(out)
    )
    assert code == 0, (stdout, stderr)
    meta = scenario.v2_meta
    names = {"report.md"} | {n for n in meta.artifacts if n.startswith("evidence/")}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == names
    assert f"{scenario.model} v2" in stdout and f"{len(names) - 1} pictures" in stdout
    for name in names:
        expected = s3_sha256(store, settings.models_bucket, meta.artifacts[name].key)
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == expected, name
    report = (out / "report.md").read_text()
    for target in re.findall(r"\]\((evidence/[^)]+)\)", report):
        assert (out / target).is_file(), target  # opens with its pictures beside it


async def test_models_pull_writes_verified_model_files(
    scenario: Scenario, store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    model = scenario.model
    onnx = tmp_path / "v2.onnx"
    code, stdout, stderr = await sentinel_cli(
        scenario.queues, "models", "pull", model, "--version", "2", "--format", "onnx",
        "-o", str(onnx),
    )  # fmt: skip
    assert code == 0, (stdout, stderr)
    expected = s3_sha256(
        store, settings.models_bucket, scenario.v2_meta.artifacts["model.onnx"].key
    )
    assert hashlib.sha256(onnx.read_bytes()).hexdigest() == expected
    assert f"wrote {onnx}" in stdout and expected in stdout.replace("\n", "")
    # The typed client: production (v1, as v2 was refused), PyTorch weights.
    pulled = await scenario.sentinel.pull_model(model, tmp_path / "prod.pt")
    (file,) = pulled.files
    assert (pulled.version, pulled.production, file.name) == (1, True, "model.pt")
    pt_key = scenario.v1_meta.artifacts["model.pt"].key
    assert file.sha256 == s3_sha256(store, settings.models_bucket, pt_key)
    assert hashlib.sha256(file.path.read_bytes()).hexdigest() == file.sha256


async def test_a_tampered_object_is_refused_and_nothing_is_written(
    scenario: Scenario, store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    # Replace objects with other bytes, their x-amz-meta-sha256 updated to match (as a
    # tamperer with write access would): only the digest in metadata.json tells.
    model, meta = scenario.model, scenario.v2_meta
    store.put_bytes(settings.models_bucket, meta.artifacts["model.pt"].key, b"not the model")
    picture = meta.comparison.worst[0].picture if meta.comparison else None
    store.put_bytes(settings.models_bucket, meta.artifacts[f"evidence/{picture}"].key, b"x")
    dest = tmp_path / "v2.pt"
    code, _, stderr = await sentinel_cli(
        scenario.queues, "models", "pull", model, "--version", "2", "-o", str(dest)
    )
    assert code == 1 and "refusing model.pt" in stderr and "nothing was written" in stderr
    assert not dest.exists()
    out = tmp_path / "report"
    code, _, stderr = await sentinel_cli(
        scenario.queues, "models", "report", model, "--version", "2", "--out", str(out)
    )
    assert code == 1 and f"refusing evidence/{picture}" in stderr
    assert not [p for p in out.rglob("*") if p.is_file()]  # not even the intact files
