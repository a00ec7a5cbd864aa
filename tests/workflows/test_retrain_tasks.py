"""RetrainWorkflow on stub activities for a task other than detect: the gate judges the task's
metric (from the snapshot's task, no workflow branch), and the result names it."""

from __future__ import annotations

import pytest

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest
from activities.contracts.evaluation import DifferenceCI, ModelMetrics
from activities.contracts.gate import GatePolicy
from tests.helpers import factories
from tests.workflows.harness import Harness

pytestmark = pytest.mark.timeout(60)


def _seg(mask: float, box: float) -> ModelMetrics:
    return ModelMetrics(
        task="segment", precision=0.5, recall=0.5, map50=box, map50_95=box,
        scores={"box_map50": box, "box_map50_95": box, "mask_map50": mask,
                "mask_map50_95": mask},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "promote"),
    [(GatePolicy(), False), (GatePolicy(metric="box_map50_95"), True)],
    ids=["mask-by-default", "box-named"],
)
async def test_a_segment_run_is_gated_on_mask_map_unless_the_policy_names_another(
    harness: Harness, policy: GatePolicy, promote: bool
) -> None:
    stubs = harness.stubs
    model = factories.unique_model()
    base = harness.request(model=model)
    dataset = AssembleRequest.model_validate({**base.dataset.model_dump(), "task": "segment"})
    request = base.model_copy(update={"dataset": dataset, "gate": policy})
    snapshot = factories.snapshot_ref(dataset.dataset).model_copy(update={"task": "segment"})
    stubs.returns(names.ASSEMBLE_DATASET, factories.assemble_result(snapshot))
    # Boxes got better, masks worse: which one the gate reads decides.
    evaluation = factories.evaluation(0.6, 0.5, 1, model=model, snapshot=snapshot).model_copy(
        update={
            "candidate": _seg(mask=0.40, box=0.60),
            "champion": _seg(mask=0.45, box=0.50),
            "ci": DifferenceCI(estimate=-0.05, low=-0.1, high=0.0, level=0.95, resamples=9, seed=0),
        }
    )
    stubs.returns(names.EVALUATE, evaluation)
    stubs.returns(names.PUBLISH, lambda r: factories.published(r, version=2))
    result = await (await harness.start(request)).result()

    gate = stubs.only_request(names.PUBLISH).gate
    metric = policy.metric or "mask_map50_95"
    assert gate.promote is promote and gate.metric == metric
    assert (result.task, result.metric) == ("segment", metric)
    expected = (0.60, 0.50) if policy.metric else (0.40, 0.45)
    assert (result.candidate_score, result.champion_score) == expected
    label = "box mAP50-95" if policy.metric else "mask mAP50-95"
    assert f"candidate {label} {expected[0]:.4f}" in gate.reason
