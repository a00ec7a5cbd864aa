"""Evaluate, gate, export and publish with tiny real YOLO models on the real S3 server.

Two models are trained once per module on a synthetic coloured-shapes set: ``good`` (about 40
short epochs, mAP50-95 ~0.5) and ``bad`` (1 epoch, mAP ~0). The evaluation snapshot is a
separate synthetic set assembled by the dataset stage with every image in the test split.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.contracts.dataset import AssembleRequest, MinCounts, SnapshotRef, SplitRatios
from activities.contracts.evaluation import (
    EvaluateRequest,
    EvaluateResult,
    EvaluationOptions,
    WeightsRef,
)
from activities.contracts.export import ExportRequest, ExportResult
from activities.contracts.gate import GateDecision, GatePolicy
from activities.contracts.registry import PublishRequest, PublishResult
from activities.infra.errors import BadInputError, IntegrityError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import Registry, production_version
from activities.registry.activity import RegistryActivities
from tests.conftest import Queues
from tests.helpers.factories import AT
from tests.helpers.outside import raw, sha256_of
from tests.helpers.stage_workflows import EvaluateWorkflow
from workflows.gate import apply_parity, decide

pytestmark = pytest.mark.slow
IMGSZ = 96


@dataclass(frozen=True)
class Fixtures:
    """Everything the tests share: the snapshot, the two models, their exports."""

    snapshot: SnapshotRef
    data_yaml: Path
    good: WeightsRef
    bad: WeightsRef
    good_pt: Path
    exports: dict[str, ExportResult]


def _train(data_yaml: Path, out: Path, name: str, epochs: int) -> Path:
    from ultralytics import YOLO

    YOLO("yolov8n.yaml").train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=IMGSZ,
        batch=4,
        mosaic=0.0,
        device="cpu",
        workers=0,
        optimizer="AdamW",
        lr0=0.003,
        warmup_epochs=1,
        seed=0,
        deterministic=True,
        val=False,
        plots=False,
        amp=False,
        verbose=False,
        project=str(out),
        name=name,
        exist_ok=True,
    )
    return out / name / "weights" / "last.pt"


@pytest.fixture(scope="module")
def fx(
    store: ObjectStore, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Fixtures:
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from activities.dataset import assemble, materialize_snapshot
    from activities.export import export
    from workers.dev import synthetic

    root = tmp_path_factory.mktemp("models")
    train_yaml = synthetic.write_yolo_dir(root / "train-set", synthetic.generate(32, seed=11))
    good_pt = _train(train_yaml, root / "runs", "good", epochs=40)
    bad_pt = _train(train_yaml, root / "runs", "bad", epochs=1)

    prefix = f"datasets/eval-{uuid.uuid4().hex[:8]}"
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=16, seed=12)
    assembled = assemble(
        store,
        settings,
        AssembleRequest(
            dataset="shapes-eval",
            prefix=prefix,
            split_ratios=SplitRatios(train=0.0, val=0.0, test=1.0),
            min_counts=MinCounts(train=0, val=0, test=1),
        ),
    )
    snapshot = assembled.snapshot
    with materialize_snapshot(store, settings, snapshot) as local:
        data_yaml = local.data_yaml
    refs = {}
    for name, path in (("good", good_pt), ("bad", bad_pt)):
        info = store.put_file(settings.runs_bucket, f"runs/fixture-{prefix[-8:]}/{name}.pt", path)
        digest = sha256_of(path.read_bytes())  # of the bytes, not what our upload recorded
        refs[name] = WeightsRef(bucket=settings.runs_bucket, key=info.key, sha256=digest)
    exports = {
        name: export(
            store,
            settings,
            ExportRequest(
                weights=ref,
                snapshot=snapshot,
                output_prefix=f"runs/fixture-{prefix[-8:]}/{name}",
                imgsz=IMGSZ,
            ),
        )
        for name, ref in refs.items()
    }
    return Fixtures(snapshot, data_yaml, refs["good"], refs["bad"], good_pt, exports)


def _model() -> str:
    return f"e-{uuid.uuid4().hex[:10]}"


def _evaluate(
    store: ObjectStore,
    settings: Settings,
    fx: Fixtures,
    model: str,
    candidate: WeightsRef,
    **options: object,
) -> EvaluateResult:
    from activities.evaluation import evaluate

    return evaluate(store, settings, _request(fx, model, candidate, **options))


def _request(fx: Fixtures, model: str, candidate: WeightsRef, **options: object) -> EvaluateRequest:
    return EvaluateRequest(
        model=model,
        snapshot=fx.snapshot,
        candidate=candidate,
        imgsz=IMGSZ,
        batch=8,
        device="cpu",
        options=EvaluationOptions.model_validate(
            {"bootstrap_resamples": 200, "bootstrap_seed": 0, **options}
        ),
    )


@pytest.fixture
def publish(store: ObjectStore, settings: Settings, fx: Fixtures) -> Callable[..., PublishResult]:
    """Publish like RetrainWorkflow: gate decision with ONNX parity applied."""

    def run(
        model: str,
        which: str,
        evaluation: EvaluateResult,
        decision: GateDecision,
        exported: ExportResult | None = None,
        snapshot: SnapshotRef | None = None,
    ) -> PublishResult:
        exported = exported or fx.exports[which]
        request = PublishRequest(
            model=model,
            workflow_id=f"retrain-{model}",
            run_id=uuid.uuid4().hex,
            created_at=AT,
            candidate=fx.good if which == "good" else fx.bad,
            export=exported,
            evaluation=evaluation,
            gate=apply_parity(decision, exported.parity),
            snapshot=snapshot or fx.snapshot,
            epochs=40 if which == "good" else 1,
        )
        return RegistryActivities(settings, store).publish(request)

    return run


def _first_version(
    store: ObjectStore,
    settings: Settings,
    fx: Fixtures,
    publish: Callable[..., PublishResult],
    model: str,
    which: str,
) -> EvaluateResult:
    """Register ``which`` as v1 (production) of ``model``."""
    ref = fx.good if which == "good" else fx.bad
    evaluation = _evaluate(store, settings, fx, model, ref)
    decision = decide(evaluation.candidate, None, None, GatePolicy())
    assert publish(model, which, evaluation, decision).production_version == 1
    return evaluation


# ---------------------------------------------------------------------- the Done-when bullets
async def test_no_champion_evaluated_by_a_worker_exported_and_promoted_above_the_floor(
    client: Client,
    queues: Queues,
    store: ObjectStore,
    settings: Settings,
    fx: Fixtures,
    publish: Callable[..., PublishResult],
) -> None:
    from activities.evaluation import EvaluationActivities

    model = _model()
    acts = EvaluationActivities(queues.settings, store)
    async with Worker(
        client,
        task_queue=queues.gpu,
        workflows=[EvaluateWorkflow],
        activities=[acts.evaluate],
        activity_executor=ThreadPoolExecutor(2),
    ):
        evaluation = await client.execute_workflow(
            EvaluateWorkflow.run,
            _request(fx, model, fx.good),
            id=f"evaluate-{model}",
            task_queue=queues.gpu,
        )
    assert evaluation.champion is None and evaluation.champion_version is None
    assert evaluation.ci is None
    assert evaluation.images == 16 and evaluation.instances > 16
    assert sum(evaluation.instances_per_class.values()) == evaluation.instances
    assert evaluation.class_names == ["circle", "square", "triangle"]
    assert 0.2 < evaluation.candidate.map50_95 <= evaluation.candidate.map50 <= 1
    assert set(evaluation.candidate.per_class_ap50_95) <= set(evaluation.class_names)
    assert evaluation.versions["ultralytics"]

    floor = round(evaluation.candidate.map50_95 - 0.05, 4)
    decision = decide(evaluation.candidate, None, None, GatePolicy(floor=floor))
    assert decision.promote and f"floor {floor:.4f}" in decision.reason
    too_high = decide(evaluation.candidate, None, None, GatePolicy(floor=0.99))
    assert not too_high.promote

    exported = fx.exports["good"]
    assert exported.parity.passed, exported.parity.reason
    assert exported.parity.max_abs_diff is not None and exported.parity.max_abs_diff < 1e-2
    assert abs(exported.parity.onnx_map50_95 - exported.parity.pt_map50_95) <= 0.01  # type: ignore[operator]
    assert exported.opset >= 7 and exported.imgsz == IMGSZ and not exported.dynamic
    assert exported.onnx.key.endswith(".onnx")

    result = publish(model, "good", evaluation, decision)
    assert (result.version, result.promoted, result.production_version) == (1, True, 1)
    meta = Registry(store, settings.models_bucket).metadata(model, 1)
    assert meta.parity == exported.parity and meta.onnx_opset == exported.opset
    stored_onnx = raw(store, settings.models_bucket, meta.artifacts["model.onnx"].key)
    exported_onnx = raw(store, exported.onnx.bucket, exported.onnx.key)
    assert stored_onnx == exported_onnx  # the very file that was exported and checked
    assert meta.artifacts["model.onnx"].sha256 == sha256_of(stored_onnx)
    assert {"ultralytics", "torch", "onnx"} <= set(meta.versions)


def test_better_candidate_promoted_and_production_alias_moves(
    store: ObjectStore, settings: Settings, fx: Fixtures, publish: Callable[..., PublishResult]
) -> None:
    model = _model()
    _first_version(store, settings, fx, publish, model, "bad")
    evaluation = _evaluate(store, settings, fx, model, fx.good)
    assert evaluation.champion_version == 1 and evaluation.champion is not None
    assert evaluation.champion.map50_95 < 0.05
    ci = evaluation.ci
    assert ci is not None and ci.resamples == 200 and ci.level == 0.95
    assert 0 < ci.low <= ci.estimate <= ci.high
    assert ci.estimate == pytest.approx(
        evaluation.candidate.map50_95 - evaluation.champion.map50_95
    )
    policy = GatePolicy(min_improvement=0.05, require_confidence=True)
    decision = decide(evaluation.candidate, evaluation.champion, ci, policy, champion_version=1)
    assert decision.promote, decision.reason
    result = publish(model, "good", evaluation, decision)
    assert (result.version, result.promoted, result.production_version) == (2, True, 2)
    assert production_version(store, settings, model) == 2


def test_worse_candidate_registered_not_promoted_alias_unchanged(
    store: ObjectStore, settings: Settings, fx: Fixtures, publish: Callable[..., PublishResult]
) -> None:
    model = _model()
    _first_version(store, settings, fx, publish, model, "good")
    evaluation = _evaluate(store, settings, fx, model, fx.bad)
    assert evaluation.champion is not None and evaluation.ci is not None
    assert evaluation.ci.high < 0  # clearly worse
    decision = decide(
        evaluation.candidate, evaluation.champion, evaluation.ci, GatePolicy(), champion_version=1
    )
    assert not decision.promote and "< min improvement" in decision.reason
    result = publish(model, "bad", evaluation, decision)
    assert (result.version, result.promoted) == (2, False)
    assert result.production_version == 1 and result.latest_version == 2
    meta = Registry(store, settings.models_bucket).metadata(model, 2)
    assert meta.champion_version == 1 and meta.champion == evaluation.champion
    assert meta.ci == evaluation.ci and meta.gate == decision


def test_same_model_as_champion_gives_a_zero_interval(
    store: ObjectStore, settings: Settings, fx: Fixtures, publish: Callable[..., PublishResult]
) -> None:
    model = _model()
    _first_version(store, settings, fx, publish, model, "good")
    evaluation = _evaluate(store, settings, fx, model, fx.good)
    assert evaluation.ci is not None
    assert (evaluation.ci.low, evaluation.ci.estimate, evaluation.ci.high) == (0.0, 0.0, 0.0)
    assert evaluation.candidate == evaluation.champion
    confident = GatePolicy(require_confidence=True)
    assert not decide(evaluation.candidate, evaluation.champion, evaluation.ci, confident).promote


def test_broken_onnx_fails_parity_and_blocks_promotion_with_reason_recorded(
    store: ObjectStore,
    settings: Settings,
    fx: Fixtures,
    tmp_path: Path,
    publish: Callable[..., PublishResult],
) -> None:
    import onnx
    from onnx import numpy_helper

    from activities.export.parity import check_parity

    good = fx.exports["good"].onnx
    original = tmp_path / "good.onnx"
    store.get_file(good.bucket, good.key, original, expected_sha256=good.sha256)
    proto = onnx.load(str(original))
    rng = np.random.default_rng(0)
    for init in proto.graph.initializer:  # perturb every conv weight: valid file, wrong model
        array = numpy_helper.to_array(init)
        if array.ndim == 4:
            noisy = array * 1.5 + rng.normal(0, 0.05, array.shape).astype(array.dtype)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))

    parity = check_parity(fx.good_pt, broken, fx.data_yaml, imgsz=IMGSZ)
    assert parity.checker_ok and not parity.passed
    assert parity.max_abs_diff is not None and parity.max_abs_diff > parity.output_tolerance
    assert "max abs output difference" in parity.reason and "> tolerance" in parity.reason
    assert parity.images_compared == 4 and parity.pt_map50_95 is not None

    info = store.put_file(settings.runs_bucket, f"runs/{uuid.uuid4().hex[:8]}/b.onnx", broken)
    exported = fx.exports["good"].model_copy(
        update={
            "onnx": WeightsRef(
                bucket=settings.runs_bucket, key=info.key, sha256=sha256_of(broken.read_bytes())
            ),
            "parity": parity,
        }
    )
    model = _model()
    evaluation = _evaluate(store, settings, fx, model, fx.good)
    decision = decide(evaluation.candidate, None, None, GatePolicy())
    assert decision.promote  # the gate alone would promote
    result = publish(model, "good", evaluation, decision, exported)
    assert (result.version, result.promoted, result.production_version) == (1, False, None)
    assert "ONNX parity failed" in result.reason
    meta = Registry(store, settings.models_bucket).metadata(model, 1)
    assert not meta.gate.promote and meta.parity == parity
    assert meta.gate.blocked_by is not None and f"{parity.max_abs_diff:.3g}" in meta.gate.blocked_by


def test_unreadable_onnx_fails_the_checker(fx: Fixtures, tmp_path: Path) -> None:
    from activities.export.parity import check_parity

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(b"\x08\x07" + b"not a protobuf model" * 10)
    parity = check_parity(fx.good_pt, truncated, fx.data_yaml, imgsz=IMGSZ)
    assert not parity.passed and not parity.checker_ok
    assert parity.reason.startswith("onnx.checker")


def test_champion_with_another_class_list(
    store: ObjectStore, settings: Settings, fx: Fixtures, publish: Callable[..., PublishResult]
) -> None:
    model = _model()
    other = fx.snapshot.model_copy(update={"class_names": ["cat", "dog"]})
    evaluation = _evaluate(store, settings, fx, model, fx.good)
    decision = decide(evaluation.candidate, None, None, GatePolicy())
    publish(model, "good", evaluation, decision, snapshot=other)  # v1 trained on cat/dog

    with pytest.raises(BadInputError) as info:
        _evaluate(store, settings, fx, model, fx.good)
    message = str(info.value)
    assert "['cat', 'dog']" in message and "['circle', 'square', 'triangle']" in message
    assert "skip_comparison_on_class_mismatch" in message

    skipped = _evaluate(store, settings, fx, model, fx.good, skip_comparison_on_class_mismatch=True)
    assert skipped.champion is None and skipped.ci is None and skipped.champion_version == 1
    assert skipped.comparison_note and "['cat', 'dog']" in skipped.comparison_note
    decision = decide(skipped.candidate, skipped.champion, skipped.ci, GatePolicy(floor=0.1))
    assert decision.promote and "no champion" in decision.reason
    result = publish(model, "good", skipped, decision)
    assert (result.version, result.production_version) == (2, 2)


def test_tampered_champion_is_refused_by_evaluate(
    store: ObjectStore, settings: Settings, fx: Fixtures, publish: Callable[..., PublishResult]
) -> None:
    model = _model()
    _first_version(store, settings, fx, publish, model, "bad")
    store.put_bytes(settings.models_bucket, f"models/{model}/v1/model.pt", b"not the champion")
    with pytest.raises(IntegrityError, match="refusing to load"):
        _evaluate(store, settings, fx, model, fx.good)
