"""PredictWorkflow: plan -> shards (in parallel, GPU or CPU queue) -> finish.

Deterministic and side-effect free: the plan activity resolves the version and cuts the
images into content-addressed shards; each shard is one ``predict_shard`` activity on the GPU
queue (PyTorch) or the CPU queue (ONNX Runtime), at most ``parallel_shards`` at a time,
heartbeating per batch; the finish activity merges them into the requested outputs and writes
the manifest. A cancel stops the running shards and writes no outputs (the shards already
stored are reused by a later run); ``stop_early`` lets the running shards finish, starts no
more and writes the outputs of what was predicted. Prediction only reads the registry: no
run of this workflow can change which version is in production.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.predict import (
        FinishRequest,
        PredictPlan,
        PredictProgress,
        PredictRequest,
        PredictResult,
        PredictStage,
        ShardRef,
        ShardRequest,
        ShardResult,
    )

_ID_PREFIX = "predict-"
PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
)
SHARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,  # each attempt resumes from the batches already stored
)


def workflow_id_for(out: str) -> str:
    """One run per output prefix: a second start for the same ``out`` is refused."""
    return f"{_ID_PREFIX}{out.strip('/').replace('/', ':')}"


def shard_request(request: PredictRequest, plan: PredictPlan, shard: ShardRef) -> ShardRequest:
    """What the activity of ``shard`` needs (its images are read from the stored plan)."""
    return ShardRequest(
        plan=plan.plan,
        shard=shard,
        model=plan.model,
        compare=plan.compare,
        imgsz=plan.imgsz,
        options=request.options,
        formats=list(request.formats),
        out_bucket=plan.out_bucket,
        out=request.out,
    )


@workflow.defn(name=names.PREDICT_WORKFLOW)
class PredictWorkflow:
    """One batch prediction of one version over a set of images."""

    def __init__(self) -> None:
        self._request: PredictRequest | None = None
        self._stage: PredictStage = "queued"
        self._plan: PredictPlan | None = None
        self._done: dict[int, ShardResult] = {}
        self._running = 0
        self._stop = False
        self._error: str | None = None

    @workflow.run
    async def run(self, request: PredictRequest) -> PredictResult:
        self._request = request
        try:
            return await self._pipeline(request)
        except (asyncio.CancelledError, FailureError) as exc:
            if is_cancelled_exception(exc):
                self._stage, self._error = "canceled", "canceled"
                raise
            failure = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
            message = failure.message if isinstance(failure, FailureError) else str(failure)
            stage = self._stage
            self._stage, self._error = "failed", f"{stage}: {message}"
            kind = failure.type if isinstance(failure, ApplicationError) else None
            raise ApplicationError(
                f"prediction with {request.model} {request.version_label} failed while "
                f"{stage}: {message}",
                type=kind or "PredictFailed",
                non_retryable=True,
            ) from exc

    async def _pipeline(self, request: PredictRequest) -> PredictResult:
        self._stage = "planning"
        plan: PredictPlan = await workflow.execute_activity(
            names.PLAN_PREDICTION,
            request,
            result_type=PredictPlan,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(hours=1),
            retry_policy=PLAN_RETRY,
        )
        self._plan = plan
        self._stage = "predicting"
        shards = await self._predict(request, plan)
        self._stage = "writing"
        info = workflow.info()
        result: PredictResult = await workflow.execute_activity(
            names.FINISH_PREDICTION,
            FinishRequest(
                request=request,
                plan=plan,
                shards=shards,
                workflow_id=info.workflow_id,
                started_at=info.start_time,
                stopped=len(shards) < len(plan.shards),
            ),
            result_type=PredictResult,
            task_queue=request.cpu_task_queue,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=5),
            retry_policy=PLAN_RETRY,
        )
        self._stage = "succeeded"
        return result

    async def _predict(self, request: PredictRequest, plan: PredictPlan) -> list[ShardResult]:
        """Every shard (or, after ``stop_early``, the ones started), ``parallel_shards`` at once."""
        queue = request.gpu_task_queue if request.backend == "pytorch" else request.cpu_task_queue
        pending = list(plan.shards)
        running: dict[int, workflow.ActivityHandle[ShardResult]] = {}
        try:
            while running or (pending and not self._stop):
                while pending and len(running) < request.parallel_shards and not self._stop:
                    shard = pending.pop(0)
                    running[shard.index] = workflow.start_activity(
                        names.PREDICT_SHARD,
                        shard_request(request, plan, shard),
                        result_type=ShardResult,
                        task_queue=queue,
                        start_to_close_timeout=timedelta(hours=12),
                        heartbeat_timeout=timedelta(
                            seconds=request.shard_heartbeat_timeout_seconds
                        ),
                        retry_policy=SHARD_RETRY,
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    )
                self._running = len(running)
                await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                for index in sorted(running):  # sorted: the same order on every replay
                    if running[index].done():
                        self._done[index] = running.pop(index).result()
        except BaseException:
            # A failed shard or a cancel: stop the others before the run ends.
            for handle in running.values():
                handle.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            raise
        finally:
            self._running = 0
        return [self._done[index] for index in sorted(self._done)]

    @workflow.query(name=names.PROGRESS_QUERY)
    def progress(self) -> PredictProgress:
        """Stage, shards and images done, throughput so far."""
        elapsed = max(0.0, workflow.time() - workflow.info().start_time.timestamp())
        images_done = sum(result.images for result in self._done.values())
        plan, request = self._plan, self._request
        return PredictProgress(
            model=request.model if request else "",
            version=plan.model.version if plan else None,
            stage=self._stage,
            shards=len(plan.shards) if plan else 0,
            shards_done=len(self._done),
            shards_running=self._running,
            images=plan.images if plan else 0,
            images_done=images_done,
            elapsed_seconds=elapsed,
            images_per_second=images_done / elapsed if images_done and elapsed > 0 else None,
            stop_early_requested=self._stop,
            error=self._error,
        )

    @workflow.signal(name=names.STOP_EARLY_SIGNAL)
    def stop_early(self) -> None:
        """Let the running shards finish, start no more, write the outputs of what was done."""
        self._stop = True
