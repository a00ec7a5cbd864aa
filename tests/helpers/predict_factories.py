"""Contracts of batch prediction for tests: stub requests and results, and contract examples.

:func:`stub_predict_request` routes a PredictWorkflow to a test's queues; :func:`plan_for`,
:func:`shard_result` and :func:`predict_result` are what the stub activities return (a real
activity's happy path, shaped by the request); :data:`EXAMPLES` feeds the contract round trip.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activities.contracts.predict import (
    FinishRequest,
    ImageSource,
    LabelStudioOptions,
    OutputShape,
    PredictOptions,
    PredictPlan,
    PredictProgress,
    PredictRequest,
    PredictResult,
    PredictSummary,
    ResolvedModel,
    ShardRef,
    ShardRequest,
    ShardResult,
    StoredObject,
)
from tests.helpers.factories import AT, SNAPSHOT, unique_model

DATA = "sentinel-data"


def _sha(n: int) -> str:
    return f"{n:064x}"


def stub_predict_request(cpu_queue: str, gpu_queue: str, **updates: Any) -> PredictRequest:
    """A request for a run on stub activities (nothing is read: the names just travel)."""
    fields: dict[str, Any] = {
        "model": unique_model("p"),
        "source": ImageSource(prefix="datasets/new"),
        "out": f"predictions/{unique_model('out')}",
        **updates,
    }
    return PredictRequest(cpu_task_queue=cpu_queue, gpu_task_queue=gpu_queue, **fields)


def resolved(model: str, version: int = 3, artifact: str = "model.pt") -> ResolvedModel:
    return ResolvedModel(
        model=model,
        version=version,
        artifact="model.onnx" if artifact == "model.onnx" else "model.pt",
        weights=StoredObject(
            bucket="sentinel-models", key=f"models/{model}/v{version}/{artifact}", sha256=_sha(9)
        ),
        class_names=["circle", "square", "triangle"],
        imgsz=96,
    )


def plan_for(request: PredictRequest, shards: int = 3, per_shard: int = 5) -> PredictPlan:
    """A plan of ``shards`` shards of ``per_shard`` images for ``request``."""
    artifact = "model.pt" if request.backend == "pytorch" else "model.onnx"
    compare = request.compare_version
    return PredictPlan(
        plan=StoredObject(
            bucket=DATA, key=f"{request.out}/shards/plan-{_sha(1)}.json", sha256=_sha(1)
        ),
        model=resolved(request.model, request.version or 3, artifact),
        compare=resolved(request.model, compare, artifact) if compare else None,
        images=shards * per_shard,
        imgsz=96,
        shards=[
            ShardRef(index=i, start=i * per_shard, images=per_shard, digest=_sha(100 + i))
            for i in range(shards)
        ],
        out_bucket=DATA,
    )


def shard_result(request: ShardRequest) -> ShardResult:
    """The shard predicted: one prediction per image."""
    shard = request.shard
    return ShardResult(
        index=shard.index,
        output=StoredObject(
            bucket=request.out_bucket,
            key=f"{request.out}/shards/{shard.digest}.json",
            sha256=_sha(200 + shard.index),
        ),
        images=shard.images,
        predictions=shard.images,
        predicted=shard.images,
        resumed=0,
        seconds=0.1,
    )


def summary(images: int) -> PredictSummary:
    return PredictSummary(
        images=images,
        unreadable=0,
        predictions=images,
        predictions_per_class={"circle": images, "square": 0, "triangle": 0},
        mean_confidence=0.8,
        seconds=2.0,
        images_per_second=images / 2.0,
        task="detect",
        outputs={
            "coco": OutputShape(
                key="predictions/x/coco/results.json",
                files=1,
                records=images,
                bytes=100,
                sha256=_sha(7),
            )
        },
    )


def predict_result(request: FinishRequest) -> PredictResult:
    """The run's outputs written, shaped by what was predicted."""
    plan = request.plan
    images = sum(shard.images for shard in request.shards)
    return PredictResult(
        model=plan.model.model,
        version=plan.model.version,
        compare_version=plan.compare.version if plan.compare else None,
        out_bucket=plan.out_bucket,
        out=request.request.out,
        manifest_key=f"{request.request.out}/manifest.json",
        summary=summary(images),
        shards=len(plan.shards),
        shards_predicted=len(request.shards),
        stopped_early=request.stopped,
        top_ranked=[],
    )


_REQUEST = PredictRequest(
    model="shapes",
    version=2,
    compare_version=1,
    source=ImageSource(snapshot=SNAPSHOT, split="test"),
    out="predictions/today",
    formats=["coco", "labelstudio"],
    backend="onnx",
    options=PredictOptions(conf=0.1, iou=0.5, imgsz=96, batch=4, device="cpu"),
    label_studio=LabelStudioOptions(from_name="box", image_url="https://s3.local/{bucket}/{key}"),
    shard_size=10,
    parallel_shards=2,
    cpu_task_queue="cpu-q",
    gpu_task_queue="gpu-q",
)
_PLAN = plan_for(_REQUEST, shards=2)
_SHARD_REQUEST = ShardRequest(
    plan=_PLAN.plan,
    shard=_PLAN.shards[0],
    model=_PLAN.model,
    compare=_PLAN.compare,
    imgsz=96,
    options=_REQUEST.options,
    formats=_REQUEST.formats,
    out_bucket=DATA,
    out=_REQUEST.out,
)
_FINISH = FinishRequest(
    request=_REQUEST,
    plan=_PLAN,
    shards=[shard_result(_SHARD_REQUEST)],
    workflow_id="predict-predictions:today",
    started_at=AT,
    stopped=True,
)
EXAMPLES: list[BaseModel] = [
    ImageSource(prefix="datasets/new", bucket="incoming"),
    PredictOptions(),
    LabelStudioOptions(),
    _REQUEST,
    _PLAN.plan,
    _PLAN.model,
    _PLAN.shards[0],
    _PLAN,
    _SHARD_REQUEST,
    shard_result(_SHARD_REQUEST),
    _FINISH,
    summary(5).outputs["coco"],
    summary(5),
    predict_result(_FINISH),
    PredictProgress(
        model="shapes",
        version=2,
        stage="predicting",
        shards=4,
        shards_done=1,
        shards_running=2,
        images=40,
        images_done=10,
        elapsed_seconds=3.0,
        images_per_second=3.3,
    ),
]
