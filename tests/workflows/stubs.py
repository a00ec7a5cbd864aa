"""Stub activities registered under the real activity names (``activities/contracts/names.py``).

The workflows under test call activities by name only, so a worker that registers these
stubs runs the real workflow code against canned results (built by
:mod:`tests.helpers.factories`). Every call is recorded (name, request, task queue). A test
can make a stage fail with a non-retryable error, hold it until released or cancelled
(heartbeating, so that a cancel reaches it), and wait for a stage to start or be cancelled:
synchronisation is by :class:`asyncio.Event`, never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import names
from activities.contracts.controller import CountNewRequest, CountNewResult
from activities.contracts.dataset import AssembleRequest, AssembleResult
from activities.contracts.evaluation import EvaluateRequest, EvaluateResult
from activities.contracts.export import ExportRequest, ExportResult
from activities.contracts.gate import GateDecision
from activities.contracts.inspection import (
    DatasetValidation,
    TrainingLogRequest,
    TrainingLogResult,
)
from activities.contracts.integrity import VerifyModelRequest, VerifyModelResult
from activities.contracts.notify import NotifyRequest, NotifyResult
from activities.contracts.predict import (
    FinishRequest,
    PredictPlan,
    PredictRequest,
    PredictResult,
    ShardRequest,
    ShardResult,
)
from activities.contracts.registry import (
    DownloadLinksRequest,
    DownloadLinksResult,
    ListVersionsRequest,
    ListVersionsResult,
    PromoteVersionRequest,
    PromoteVersionResult,
    PublishRequest,
    PublishResult,
    RollbackRequest,
    RollbackResult,
    ShowVersionRequest,
    ShowVersionResult,
)
from activities.contracts.retention import GcRequest, GcResult
from activities.contracts.retrain import RetrainRequest
from activities.contracts.training import (
    TrainRequest,
    TrainResult,
    WriteControlRequest,
    WriteControlResult,
)
from activities.contracts.weights import (
    AddWeightsResult,
    InspectWeightsRequest,
    InspectWeightsResult,
    ListWeightsRequest,
    ListWeightsResult,
    RecordWeightsRequest,
)
from tests.helpers import factories, predict_factories, weights_factories
from workflows.gate import decide, protect_classes

HEARTBEAT_EVERY = 0.1
"""Seconds between heartbeats of a held stub: how fast a cancel reaches it (the stub workers
throttle heartbeats to the same)."""

DEFAULT_RESULTS: dict[str, Callable[[Any], Any]] = {
    names.ASSEMBLE_DATASET: lambda r: factories.assemble_result(factories.snapshot_ref(r.dataset)),
    names.TRAIN: lambda r: factories.train_result(
        activity.info().workflow_id or "", epochs=r.hyperparameters.epochs
    ),
    names.EVALUATE: lambda r: factories.evaluation(model=r.model, snapshot=r.snapshot),
    names.EXPORT: lambda r: factories.exported(r.weights),
    names.PUBLISH: lambda r: factories.published(r),
    names.NOTIFY: lambda r: factories.notify_result(),
    names.WRITE_CONTROL: lambda r: factories.write_control_result(r.run_id),
    names.COUNT_NEW_VERIFIED: lambda r: factories.count_new_result(0),
    names.LIST_VERSIONS: lambda r: factories.list_versions_result(r.model),
    names.SHOW_VERSION: lambda r: factories.show_version_result(r.model, r.version or 3),
    names.PROMOTE_VERSION: lambda r: factories.promote_version_result(r.model, r.version),
    names.ROLLBACK_PRODUCTION: lambda r: factories.rollback_result(r.model),
    names.COLLECT_GARBAGE: lambda r: factories.gc_result(dry_run=r.dry_run),
    names.INSPECT_WEIGHTS: lambda r: weights_factories.inspected(),
    names.RECORD_WEIGHTS: lambda r: weights_factories.add_weights_result(r.entry, r.inspected),
    names.LIST_WEIGHTS: lambda r: weights_factories.list_weights_result(),
    names.DOWNLOAD_LINKS: lambda r: factories.download_links_result(r.model, r.version or 3),
    names.VERIFY_MODEL: lambda r: VerifyModelResult(model=r.model, versions=[], history_entries=0),
    names.PLAN_PREDICTION: lambda r: predict_factories.plan_for(r),
    names.PREDICT_SHARD: lambda r: predict_factories.shard_result(r),
    names.FINISH_PREDICTION: lambda r: predict_factories.predict_result(r),
}
"""Each stub's result as a function of its request (a real activity's happy path)."""


PIPELINE = [  # the activities of a completed run, in order
    names.ASSEMBLE_DATASET,
    names.TRAIN,
    names.EVALUATE,
    names.EXPORT,
    names.PUBLISH,
    names.NOTIFY,
]
APPROVAL_PIPELINE = [*PIPELINE[:3], names.NOTIFY, *PIPELINE[3:]]
"""A completed run that asked for approval: people are notified when it starts waiting."""


def gate_of(request: RetrainRequest, evaluation: EvaluateResult) -> GateDecision:
    """The gate's decision on ``evaluation`` under the request's policy (before approval):
    the overall rule, then the per-class rule, as RetrainWorkflow applies them."""
    decision = decide(
        evaluation.candidate,
        evaluation.champion,
        evaluation.ci,
        request.gate,
        champion_version=evaluation.champion_version,
    )
    return protect_classes(decision, evaluation)


def stub_evaluation(
    request: RetrainRequest,
    candidate: float = 0.6,
    champion: float | None = None,
    champion_version: int | None = None,
) -> EvaluateResult:
    """An evaluation of this run's candidate (by default, the one the evaluate stub returns)."""
    snapshot = factories.snapshot_ref(request.dataset.dataset)
    return factories.evaluation(
        candidate, champion, champion_version, model=request.model_name, snapshot=snapshot
    )


@dataclass(frozen=True)
class Call:
    """One call of a stub: which activity, with what, from where."""

    name: str
    request: Any
    task_queue: str
    workflow_id: str
    attempt: int


class Stubs:
    """The stub activities of one test, its script (failures, holds, results) and its record."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.results: dict[str, Callable[[Any], Any]] = dict(DEFAULT_RESULTS)
        self._failures: dict[str, tuple[ApplicationError, Callable[[Any], bool]]] = {}
        self._holds: dict[str, asyncio.Event] = {}
        self._details: dict[str, Any] = {}
        self._started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._cancelled: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    # ------------------------------------------------------------------ script
    def returns(self, name: str, result: Any) -> None:
        """Make activity ``name`` return ``result`` (a contract, or a function of the request)."""
        self.results[name] = result if callable(result) else (lambda _: result)

    def fail(
        self,
        name: str,
        message: str,
        *,
        kind: str = "BadInputError",
        when: Callable[[Any], bool] = lambda _: True,
    ) -> None:
        """Make activity ``name`` raise a non-retryable error, as ``@translate_errors`` does.

        ``when(request)``: only the calls whose request it accepts fail (they are not held).
        """
        error = ApplicationError(message, type=kind, non_retryable=True)
        self._failures[name] = (error, when)

    def hold(self, name: str) -> asyncio.Event:
        """Make activity ``name`` wait (heartbeating) until the returned event is set."""
        release = self._holds[name] = asyncio.Event()
        return release

    def heartbeat_with(self, name: str, details: Any) -> None:
        """Make a held activity ``name`` heartbeat ``details`` from now on (as real ones do)."""
        self._details[name] = details

    async def started(self, name: str, timeout: float = 15.0) -> None:
        """Wait until activity ``name`` has been called."""
        await asyncio.wait_for(self._started[name].wait(), timeout)

    async def cancelled(self, name: str, timeout: float = 15.0) -> None:
        """Wait until a held activity ``name`` has received its cancellation."""
        await asyncio.wait_for(self._cancelled[name].wait(), timeout)

    def was_cancelled(self, name: str) -> bool:
        """Whether a held activity ``name`` received a cancellation."""
        return self._cancelled[name].is_set()

    # ------------------------------------------------------------------ record
    def calls_of(self, name: str) -> list[Call]:
        """The calls of activity ``name``, in order."""
        return [call for call in self.calls if call.name == name]

    def requests_of(self, name: str) -> list[Any]:
        """The requests activity ``name`` received, in order."""
        return [call.request for call in self.calls_of(name)]

    def only_request(self, name: str) -> Any:
        """The request of activity ``name``, asserting it was called exactly once."""
        requests = self.requests_of(name)
        assert len(requests) == 1, f"{name} called {len(requests)} times"
        return requests[0]

    def order(self) -> list[str]:
        """Names of the activities called, in call order."""
        return [call.name for call in self.calls]

    # ------------------------------------------------------------------ behaviour
    async def _run(self, name: str, request: Any) -> Any:
        info = activity.info()
        self.calls.append(
            Call(name, request, info.task_queue, info.workflow_id or "", info.attempt)
        )
        self._started[name].set()
        if name in self._failures and self._failures[name][1](request):
            raise self._failures[name][0]
        if name in self._holds:
            await self._hold(name, self._holds[name])
        return self.results[name](request)

    async def _hold(self, name: str, release: asyncio.Event) -> None:
        # Heartbeats carry a cancel to an activity: beat until released, or cancelled.
        try:
            while not release.is_set():
                details = self._details.get(name)
                activity.heartbeat(*([details] if details is not None else []))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(release.wait(), HEARTBEAT_EVERY)
        except asyncio.CancelledError:
            self._cancelled[name].set()
            raise

    @activity.defn(name=names.ASSEMBLE_DATASET)
    async def assemble_dataset(self, request: AssembleRequest) -> AssembleResult:
        """Stub of ``assemble_dataset``."""
        return await self._run(names.ASSEMBLE_DATASET, request)

    @activity.defn(name=names.TRAIN)
    async def train(self, request: TrainRequest) -> TrainResult:
        """Stub of ``train``."""
        return await self._run(names.TRAIN, request)

    @activity.defn(name=names.EVALUATE)
    async def evaluate(self, request: EvaluateRequest) -> EvaluateResult:
        """Stub of ``evaluate``."""
        return await self._run(names.EVALUATE, request)

    @activity.defn(name=names.EXPORT)
    async def export(self, request: ExportRequest) -> ExportResult:
        """Stub of ``export``."""
        return await self._run(names.EXPORT, request)

    @activity.defn(name=names.PUBLISH)
    async def publish(self, request: PublishRequest) -> PublishResult:
        """Stub of ``publish``."""
        return await self._run(names.PUBLISH, request)

    @activity.defn(name=names.NOTIFY)
    async def notify(self, request: NotifyRequest) -> NotifyResult:
        """Stub of ``notify``."""
        return await self._run(names.NOTIFY, request)

    @activity.defn(name=names.WRITE_CONTROL)
    async def write_control(self, request: WriteControlRequest) -> WriteControlResult:
        """Stub of ``write_control``."""
        return await self._run(names.WRITE_CONTROL, request)

    @activity.defn(name=names.COUNT_NEW_VERIFIED)
    async def count_new_verified(self, request: CountNewRequest) -> CountNewResult:
        """Stub of ``count_new_verified``."""
        return await self._run(names.COUNT_NEW_VERIFIED, request)

    @activity.defn(name=names.LIST_VERSIONS)
    async def list_versions(self, request: ListVersionsRequest) -> ListVersionsResult:
        """Stub of ``list_versions``."""
        return await self._run(names.LIST_VERSIONS, request)

    @activity.defn(name=names.SHOW_VERSION)
    async def show_version(self, request: ShowVersionRequest) -> ShowVersionResult:
        """Stub of ``show_version``."""
        return await self._run(names.SHOW_VERSION, request)

    @activity.defn(name=names.PROMOTE_VERSION)
    async def promote_version(self, request: PromoteVersionRequest) -> PromoteVersionResult:
        """Stub of ``promote_version``."""
        return await self._run(names.PROMOTE_VERSION, request)

    @activity.defn(name=names.ROLLBACK_PRODUCTION)
    async def rollback_production(self, request: RollbackRequest) -> RollbackResult:
        """Stub of ``rollback_production``."""
        return await self._run(names.ROLLBACK_PRODUCTION, request)

    @activity.defn(name=names.COLLECT_GARBAGE)
    async def collect_garbage(self, request: GcRequest) -> GcResult:
        """Stub of ``collect_garbage``."""
        return await self._run(names.COLLECT_GARBAGE, request)

    @activity.defn(name=names.INSPECT_WEIGHTS)
    async def inspect_weights(self, request: InspectWeightsRequest) -> InspectWeightsResult:
        """Stub of ``inspect_weights``."""
        return await self._run(names.INSPECT_WEIGHTS, request)

    @activity.defn(name=names.RECORD_WEIGHTS)
    async def record_weights(self, request: RecordWeightsRequest) -> AddWeightsResult:
        """Stub of ``record_weights``."""
        return await self._run(names.RECORD_WEIGHTS, request)

    @activity.defn(name=names.LIST_WEIGHTS)
    async def list_weights(self, request: ListWeightsRequest) -> ListWeightsResult:
        """Stub of ``list_weights``."""
        return await self._run(names.LIST_WEIGHTS, request)

    @activity.defn(name=names.VALIDATE_DATASET)
    async def validate_dataset(self, request: AssembleRequest) -> DatasetValidation:
        return await self._run(names.VALIDATE_DATASET, request)

    @activity.defn(name=names.READ_TRAINING_LOG)
    async def read_training_log(self, request: TrainingLogRequest) -> TrainingLogResult:
        return await self._run(names.READ_TRAINING_LOG, request)

    @activity.defn(name=names.DOWNLOAD_LINKS)
    async def download_links(self, request: DownloadLinksRequest) -> DownloadLinksResult:
        """Stub of ``download_links``."""
        return await self._run(names.DOWNLOAD_LINKS, request)

    @activity.defn(name=names.VERIFY_MODEL)
    async def verify_model(self, request: VerifyModelRequest) -> VerifyModelResult:
        """Stub of ``verify_model``."""
        return await self._run(names.VERIFY_MODEL, request)

    @activity.defn(name=names.PLAN_PREDICTION)
    async def plan_prediction(self, request: PredictRequest) -> PredictPlan:
        """Stub of ``plan_prediction``."""
        return await self._run(names.PLAN_PREDICTION, request)

    @activity.defn(name=names.PREDICT_SHARD)
    async def predict_shard(self, request: ShardRequest) -> ShardResult:
        """Stub of ``predict_shard`` (both queues)."""
        return await self._run(names.PREDICT_SHARD, request)

    @activity.defn(name=names.FINISH_PREDICTION)
    async def finish_prediction(self, request: FinishRequest) -> PredictResult:
        """Stub of ``finish_prediction``."""
        return await self._run(names.FINISH_PREDICTION, request)

    # ------------------------------------------------------------------ wiring
    def gpu_activities(self) -> list[Callable[..., Any]]:
        """The GPU queue's activities (as ``workers/wiring.py`` places them)."""
        return [self.train, self.evaluate, self.predict_shard]

    def cpu_activities(self) -> list[Callable[..., Any]]:
        """The CPU queue's activities (as ``workers/wiring.py`` places them)."""
        return [
            self.assemble_dataset,
            self.write_control,
            self.notify,
            self.count_new_verified,
            self.export,
            self.publish,
            self.list_versions,
            self.show_version,
            self.promote_version,
            self.rollback_production,
            self.collect_garbage,
            self.inspect_weights,
            self.record_weights,
            self.list_weights,
            self.validate_dataset,
            self.read_training_log,
            self.download_links,
            self.verify_model,
            self.plan_prediction,
            self.predict_shard,
            self.finish_prediction,
        ]
