"""ImportModelWorkflow, the catalog workflows and the base a retrain records, on stubs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from activities.contracts import names
from activities.contracts.bases import BaseRecord, RegistryBase
from activities.contracts.model_import import ImportModelRequest, ImportModelResult
from activities.contracts.registry import ImportedFrom, ListVersionsRequest
from activities.contracts.weights import (
    InspectWeightsRequest,
    ListWeightsRequest,
    RecordWeightsRequest,
)
from tests.helpers import factories, weights_factories
from tests.workflows.harness import Harness
from tests.workflows.stubs import DEFAULT_RESULTS
from workflows.catalog_ops import AddWeightsWorkflow, ListWeightsWorkflow
from workflows.gate import import_decision
from workflows.import_model import ImportModelWorkflow, import_workflow_id

pytestmark = pytest.mark.timeout(60)

IMPORT_PIPELINE = [
    names.LIST_VERSIONS,
    names.ASSEMBLE_DATASET,
    names.INSPECT_WEIGHTS,
    names.EVALUATE,
    names.EXPORT,
    names.PUBLISH,
]


def no_versions(request: Any) -> Any:
    """The list_versions answer for a model that has none."""
    return factories.list_versions_result(request.model).model_copy(
        update={"versions": [], "production_version": None, "latest_version": None, "total": 0}
    )


async def start_import(
    harness: Harness, request: ImportModelRequest
) -> WorkflowHandle[Any, ImportModelResult]:
    """Start ImportModelWorkflow as the client API does (id ``import-{model}``)."""
    handle = await harness.client.start_workflow(
        ImportModelWorkflow.run,
        request,
        id=import_workflow_id(request.model),
        task_queue=harness.cpu,
    )
    return harness.track(handle)


def import_request(harness: Harness, **updates: Any) -> ImportModelRequest:
    """An import routed to this test's queues, of a model without versions."""
    harness.stubs.returns(names.LIST_VERSIONS, no_versions)
    return weights_factories.import_request(harness.cpu, harness.gpu, **updates)


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_import_registers_v1_as_production_without_a_training_section(
    harness: Harness,
) -> None:
    stubs = harness.stubs
    request = import_request(harness)
    handle = await start_import(harness, request)
    result = await handle.result()

    assert stubs.order() == IMPORT_PIPELINE
    assert {call.name: call.task_queue for call in stubs.calls} == {
        **{name: harness.cpu for name in IMPORT_PIPELINE},
        names.EVALUATE: harness.gpu,
    }
    assert stubs.only_request(names.LIST_VERSIONS) == ListVersionsRequest(
        model=request.model, limit=1
    )
    assert stubs.only_request(names.ASSEMBLE_DATASET) == request.dataset
    assert stubs.only_request(names.INSPECT_WEIGHTS) == InspectWeightsRequest(
        weights=request.weights
    )
    snapshot = factories.snapshot_ref(request.dataset.dataset)
    evaluate = stubs.only_request(names.EVALUATE)
    assert (evaluate.model, evaluate.snapshot, evaluate.candidate) == (
        request.model,
        snapshot,
        request.weights,
    )
    assert (evaluate.imgsz, evaluate.options) == (request.imgsz, request.evaluation)
    export = stubs.only_request(names.EXPORT)
    assert (export.weights, export.output_prefix, export.options) == (
        request.weights,
        f"runs/{handle.id}/export",
        request.export,
    )
    evaluation = factories.evaluation(model=request.model, snapshot=snapshot)
    decision = import_decision(evaluation.candidate, None)
    publish = stubs.only_request(names.PUBLISH)
    assert publish.imported == ImportedFrom(
        file_name=request.source_file, sha256=request.weights.sha256, task="detect"
    )
    assert (publish.candidate, publish.evaluation, publish.gate) == (
        request.weights,
        evaluation,
        decision,
    )
    assert (publish.epochs, publish.hyperparameters, publish.results_csv_key) == (0, {}, None)
    assert (publish.parent_version, publish.base) == (None, None)
    assert decision.promote and "imported as the model in production today" in decision.reason

    assert (result.model, result.version, result.promoted, result.production_version) == (
        request.model,
        1,
        True,
        1,
    )
    assert (result.map50_95, result.task) == (evaluation.candidate.map50_95, "detect")
    assert result.class_names == snapshot.class_names and result.snapshot_key == snapshot.key
    assert result.reason == decision.reason


async def test_a_model_with_versions_is_refused_before_anything_runs(harness: Harness) -> None:
    request = weights_factories.import_request(harness.cpu, harness.gpu)  # the stub: 2 versions
    cause = await failure_of(await start_import(harness, request))

    assert (cause.type, cause.non_retryable) == ("BadInputError", True)
    assert f"model {request.model!r} already has 2 version(s) (production: v3)" in cause.message
    assert f"registry:{request.model}@production" in cause.message
    assert harness.stubs.order() == [names.LIST_VERSIONS]


@pytest.mark.parametrize(
    ("inspected", "expected"),
    [
        (weights_factories.inspected(task="segment"), "is a segment model"),
        (
            weights_factories.inspected(["circle", "triangle", "square"]),
            "trained on classes ['circle', 'triangle', 'square'] but the data",
        ),
    ],
    ids=["wrong-task", "classes-in-another-order"],
)
async def test_weights_that_do_not_fit_the_data_are_refused_before_evaluation(
    harness: Harness, inspected: Any, expected: str
) -> None:
    harness.stubs.returns(names.INSPECT_WEIGHTS, inspected)
    request = import_request(harness)
    cause = await failure_of(await start_import(harness, request))

    assert (cause.type, cause.non_retryable) == ("BadInputError", True)
    assert expected in cause.message and request.source_file in cause.message
    assert harness.stubs.order() == IMPORT_PIPELINE[:3]


async def test_bad_input_in_an_activity_names_the_stage(harness: Harness) -> None:
    harness.stubs.fail(names.INSPECT_WEIGHTS, "best.pt is not an Ultralytics checkpoint")
    request = import_request(harness)
    cause = await failure_of(await start_import(harness, request))

    assert (cause.type, cause.non_retryable) == ("BadInputError", True)
    assert cause.message == (
        f"import of {request.model} failed while inspecting: best.pt is not an Ultralytics "
        "checkpoint"
    )


async def test_failed_onnx_parity_registers_the_import_without_promoting(
    harness: Harness,
) -> None:
    stubs = harness.stubs
    stubs.returns(names.EXPORT, lambda r: factories.exported(r.weights, passed=False))
    request = import_request(harness)
    result = await (await start_import(harness, request)).result()

    publish = stubs.only_request(names.PUBLISH)
    assert not publish.gate.promote and publish.gate.blocked_by is not None
    assert "ONNX parity failed" in publish.gate.reason
    assert (result.version, result.promoted, result.production_version) == (1, False, None)


async def test_cancel_before_publishing_publishes_nothing(harness: Harness) -> None:
    stubs = harness.stubs
    stubs.hold(names.EVALUATE)
    handle = await start_import(harness, import_request(harness))
    await stubs.started(names.EVALUATE)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()

    assert isinstance(info.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    await stubs.cancelled(names.EVALUATE)
    assert stubs.calls_of(names.PUBLISH) == []


async def test_add_weights_inspects_then_records(harness: Harness) -> None:
    stubs = harness.stubs
    stubs.returns(names.INSPECT_WEIGHTS, weights_factories.inspected(["person", "car"]))
    request = weights_factories.add_weights_request("tiny.pt")
    result = await harness.client.execute_workflow(
        AddWeightsWorkflow.run,
        request,
        id=f"weights-add-{uuid.uuid4().hex[:8]}",
        task_queue=harness.cpu,
    )

    assert stubs.order() == [names.INSPECT_WEIGHTS, names.RECORD_WEIGHTS]
    inspected = weights_factories.inspected(["person", "car"])
    assert stubs.only_request(names.RECORD_WEIGHTS) == RecordWeightsRequest(
        entry=request, inspected=inspected
    )
    assert (result.record.name, result.record.class_names, result.created) == (
        "tiny.pt",
        ["person", "car"],
        True,
    )


async def test_add_weights_that_are_not_a_checkpoint_records_nothing(harness: Harness) -> None:
    harness.stubs.fail(names.INSPECT_WEIGHTS, "x.pt is not an Ultralytics checkpoint")
    handle = await harness.client.start_workflow(
        AddWeightsWorkflow.run,
        weights_factories.add_weights_request("x.pt"),
        id=f"weights-add-{uuid.uuid4().hex[:8]}",
        task_queue=harness.cpu,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert harness.stubs.order() == [names.INSPECT_WEIGHTS]


async def test_list_weights_passes_the_limit(harness: Harness) -> None:
    result = await harness.client.execute_workflow(
        ListWeightsWorkflow.run,
        ListWeightsRequest(limit=7),
        id=f"weights-list-{uuid.uuid4().hex[:8]}",
        task_queue=harness.cpu,
    )
    assert harness.stubs.only_request(names.LIST_WEIGHTS) == ListWeightsRequest(limit=7)
    assert result == weights_factories.list_weights_result()


@pytest.mark.parametrize(
    ("base_model", "version", "parent"),
    [("self", "3", 3), ("self", "v3", 3), ("self", "production", None), ("other", "3", None)],
)
async def test_a_retrain_records_its_base_and_parent_only_for_its_own_versions(
    harness: Harness, base_model: str, version: str, parent: int | None
) -> None:
    stubs = harness.stubs
    model = factories.unique_model()
    base = RegistryBase(model=model if base_model == "self" else "other-model", version=version)
    record = BaseRecord(spec=f"registry:{base.model}@{version}", sha256="78" * 32)

    def trained(request: Any) -> Any:
        result = DEFAULT_RESULTS[names.TRAIN](request)
        return result.model_copy(update={"base": record, "base_downloaded": True})

    stubs.returns(names.TRAIN, trained)
    await (await harness.start(harness.request(model=model, base=base))).result()

    assert stubs.only_request(names.TRAIN).base == base
    publish = stubs.only_request(names.PUBLISH)
    assert (publish.base, publish.parent_version) == (record, parent)
