"""The per-class rule of the gate (workflows.gate.protect_classes): pure, on hand-made numbers.

Evaluations come from ``tests.helpers.factories``: three classes (circle 8, square 13,
triangle 10 test instances); overall the candidate scores 0.6 against a champion's 0.5.
"""

from __future__ import annotations

import pytest

from activities.contracts.evaluation import DifferenceCI, EvaluateResult
from activities.contracts.gate import GateDecision, GatePolicy
from tests.helpers import factories
from workflows.gate import class_losses, decide, protect_classes


def gated(
    evaluation: EvaluateResult, policy: GatePolicy | None = None
) -> tuple[GateDecision, GateDecision]:
    """``(overall decision, decision with the per-class rule)``."""
    policy = policy or GatePolicy()
    decision = decide(
        evaluation.candidate,
        evaluation.champion,
        evaluation.ci,
        policy,
        champion_version=evaluation.champion_version,
    )
    return decision, protect_classes(decision, evaluation)


def better_overall(**loss: object) -> EvaluateResult:
    """Candidate 0.6 vs champion v2 0.5 overall, with class ``square`` as ``loss`` says."""
    return factories.with_class_loss(factories.evaluation(0.6, 0.5, 2), **loss)  # type: ignore[arg-type]


def test_a_collapsed_class_refuses_a_candidate_that_gains_overall_naming_class_and_numbers() -> (
    None
):
    overall, decision = gated(better_overall(candidate=0.1, champion=0.7, ci=(-0.7, -0.5)))

    assert overall.promote  # the overall rule alone would promote
    assert not decision.promote
    assert decision.reason.startswith("not promoted: class 'square' AP50-95 0.7000 -> 0.1000")
    for text in ("-0.6000", "95% CI [-0.7000, -0.5000]", "13 test instances", "tolerance 0.0500"):
        assert text in decision.reason
    assert decision.reason.endswith(f"(overall: {overall.reason})")
    (loss,) = decision.class_losses
    assert (loss.name, loss.instances, loss.candidate_ap50_95, loss.champion_ap50_95) == (
        "square",
        13,
        0.1,
        0.7,
    )
    assert (loss.difference, loss.ci_low, loss.ci_high, loss.ci_level) == (
        pytest.approx(-0.6),
        -0.7,
        -0.5,
        0.95,
    )


@pytest.mark.parametrize(
    ("cand", "champ", "ci", "refused"),
    [
        (0.60, 0.70, (-0.20, -0.01), True),  # lost 0.10 > 0.05, interval below 0
        (0.60, 0.70, (-0.25, +0.02), False),  # lost 0.10, but the interval reaches 0: noise
        (0.66, 0.70, (-0.08, -0.01), False),  # real loss, within the tolerance
        (0.65, 0.70, (-0.08, -0.01), False),  # exactly the tolerance is accepted
        (0.80, 0.70, (+0.05, +0.15), False),  # a gain
    ],
)
def test_a_class_is_lost_beyond_the_tolerance_and_beyond_noise(
    cand: float, champ: float, ci: tuple[float, float], refused: bool
) -> None:
    _, decision = gated(better_overall(candidate=cand, champion=champ, ci=ci))
    assert decision.promote is not refused
    assert [loss.name for loss in decision.class_losses] == (["square"] if refused else [])


def test_classes_with_few_test_instances_are_not_judged() -> None:
    evaluation = better_overall(candidate=0.1, champion=0.7, ci=(-0.7, -0.5))
    _, strict = gated(evaluation, GatePolicy(min_class_instances=14))  # square has 13
    assert strict.promote and strict.class_losses == []
    _, default = gated(evaluation, GatePolicy(min_class_instances=13))
    assert not default.promote


def test_the_rule_is_off_with_no_tolerance() -> None:
    overall, decision = gated(
        better_overall(candidate=0.1, champion=0.7, ci=(-0.7, -0.5)),
        GatePolicy(per_class_tolerance=None),
    )
    assert decision == overall and decision.promote


def test_an_already_refused_candidate_keeps_its_reason_and_gains_the_class() -> None:
    evaluation = factories.with_class_loss(factories.evaluation(0.4, 0.5, 2))
    overall, decision = gated(evaluation)
    assert not overall.promote
    assert decision.reason.startswith(overall.reason + "; class 'square' AP50-95")
    assert [loss.name for loss in decision.class_losses] == ["square"]


def test_several_lost_classes_are_all_named_in_class_order() -> None:
    evaluation = better_overall(candidate=0.1, champion=0.7, ci=(-0.7, -0.5))
    triangle = DifferenceCI(estimate=-0.3, low=-0.4, high=-0.2, level=0.95, resamples=100, seed=0)
    assert evaluation.champion is not None
    evaluation = evaluation.model_copy(
        update={
            "candidate": evaluation.candidate.model_copy(
                update={
                    "per_class_ap50_95": {**evaluation.candidate.per_class_ap50_95, "triangle": 0.2}
                }
            ),
            "champion": evaluation.champion.model_copy(
                update={
                    "per_class_ap50_95": {**evaluation.champion.per_class_ap50_95, "triangle": 0.5}
                }
            ),
            "per_class_ci": {**evaluation.per_class_ci, "triangle": triangle},
        }
    )
    _, decision = gated(evaluation)
    assert [loss.name for loss in decision.class_losses] == ["square", "triangle"]
    assert decision.reason.index("'square'") < decision.reason.index("'triangle'")


def test_no_champion_no_per_class_rule() -> None:
    evaluation = factories.evaluation(0.6)
    overall, decision = gated(evaluation)
    assert decision == overall and decision.promote


def test_without_per_class_intervals_the_point_estimate_decides() -> None:
    # An evaluation made before per-class intervals existed (a rolling upgrade).
    evaluation = better_overall(candidate=0.1, champion=0.7).model_copy(update={"per_class_ci": {}})
    (loss,) = class_losses(evaluation, GatePolicy())
    assert (loss.name, loss.ci_low, loss.ci_high) == ("square", None, None)
    _, decision = gated(evaluation)
    assert "no interval: point estimate" in decision.reason and not decision.promote


def test_a_refused_decision_stays_refused_when_parity_fails_later() -> None:
    from workflows.gate import apply_parity

    _, decision = gated(better_overall())
    assert apply_parity(decision, factories.parity(False)) == decision
