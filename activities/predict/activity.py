"""Temporal activities of batch prediction: plan (CPU), predict a shard (GPU or CPU), finish (CPU).

``predict_shard`` is registered on both queues: the workflow sends a PyTorch run to the GPU
queue and an ONNX Runtime run to the CPU queue; the request names the artifact either way.
"""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.predict import (
    FinishRequest,
    PredictPlan,
    PredictRequest,
    PredictResult,
    ShardRequest,
    ShardResult,
)
from activities.infra.errors import translate_errors
from activities.infra.heartbeat import heartbeat_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore


class PredictActivities:
    """The prediction activities bound to one store and the configured buckets."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.PLAN_PREDICTION)
    @translate_errors
    def plan_prediction(self, request: PredictRequest) -> PredictPlan:
        """Resolve the versions, list the images, store the list, cut it into shards."""
        from activities.predict.plan import plan

        self.store.check_bucket(self.settings.data_bucket)
        return plan(self.store, self.settings, request)

    @activity.defn(name=names.PREDICT_SHARD)
    @translate_errors
    def predict_shard(self, request: ShardRequest) -> ShardResult:
        """Predict one shard, batch by batch (heartbeat per batch), resuming stored batches."""
        from activities.infra.yolo_env import bootstrap_offline

        bootstrap_offline()
        from activities.predict.shard import predict_shard

        return predict_shard(
            self.store,
            self.settings,
            request,
            progress=heartbeat_progress(f"shard {request.shard.index}"),
            attempt=activity.info().attempt,
        )

    @activity.defn(name=names.FINISH_PREDICTION)
    @translate_errors
    def finish_prediction(self, request: FinishRequest) -> PredictResult:
        """Merge the shards into the requested outputs, rank, summarise, write the manifest."""
        from activities.predict.finish import finish

        return finish(self.store, request, progress=heartbeat_progress("finish"))
