"""The promotion gate: a pure function of metrics, interval and policy."""

from __future__ import annotations

import math

import pytest

from activities.contracts.evaluation import DifferenceCI, ModelMetrics
from activities.contracts.export import ParityReport
from activities.contracts.gate import GateDecision, GatePolicy
from workflows.gate import apply_parity, decide


def metrics(map50_95: float) -> ModelMetrics:
    return ModelMetrics(
        precision=0.5, recall=0.5, map50=min(1.0, map50_95 + 0.2), map50_95=map50_95
    )


def ci(low: float, high: float, level: float = 0.95) -> DifferenceCI:
    return DifferenceCI(
        estimate=(low + high) / 2, low=low, high=high, level=level, resamples=200, seed=0
    )


# ---------------------------------------------------------------------- no champion
@pytest.mark.parametrize(
    ("candidate", "floor", "promote"),
    [(0.0, 0.0, True), (0.31, 0.3, True), (0.3, 0.3, True), (0.29, 0.3, False), (0.0, 0.01, False)],
)
def test_no_champion_promotes_at_or_above_the_floor(
    candidate: float, floor: float, promote: bool
) -> None:
    decision = decide(metrics(candidate), None, None, GatePolicy(floor=floor))
    assert decision.promote is promote
    assert decision.champion_map50_95 is None and decision.improvement is None
    assert "no champion" in decision.reason
    assert f"{candidate:.4f}" in decision.reason and f"{floor:.4f}" in decision.reason
    assert decision.reason.startswith("promoted" if promote else "not promoted")


def test_default_policy_promotes_any_first_model() -> None:
    assert decide(metrics(0.0), None, None, GatePolicy()).promote


def test_no_champion_ignores_confidence_requirement() -> None:
    decision = decide(metrics(0.4), None, None, GatePolicy(require_confidence=True))
    assert decision.promote


# ---------------------------------------------------------------------- with champion
def test_better_candidate_promoted_with_numbers_in_reason() -> None:
    decision = decide(metrics(0.6), metrics(0.5), ci(0.02, 0.18), GatePolicy(), champion_version=3)
    assert decision.promote
    assert decision.improvement == pytest.approx(0.1)
    assert decision.champion_version == 3
    assert decision.ci_low == 0.02 and decision.ci_high == 0.18 and decision.ci_level == 0.95
    for text in ("0.6000", "0.5000", "+0.1000", "champion v3", "[+0.0200, +0.1800]"):
        assert text in decision.reason


def test_worse_candidate_not_promoted() -> None:
    decision = decide(metrics(0.4), metrics(0.5), ci(-0.2, 0.01), GatePolicy(), champion_version=1)
    assert not decision.promote
    assert "-0.1000 < min improvement +0.0000" in decision.reason


def test_equal_candidate_promoted_with_zero_min_improvement() -> None:
    assert decide(metrics(0.5), metrics(0.5), None, GatePolicy()).promote


@pytest.mark.parametrize(
    ("candidate", "champion", "min_improvement", "promote"),
    [
        (0.6, 0.5, 0.1, True),  # exactly the minimum (0.6 - 0.5 < 0.1 in binary floats)
        (0.6, 0.5, 0.1000001, False),
        (0.55, 0.5, 0.1, False),
        (0.7, 0.5, 0.1, True),
        (0.45, 0.5, -0.05, True),  # a negative minimum tolerates a small regression
    ],
)
def test_min_improvement(
    candidate: float, champion: float, min_improvement: float, promote: bool
) -> None:
    policy = GatePolicy(min_improvement=min_improvement)
    assert decide(metrics(candidate), metrics(champion), None, policy).promote is promote


@pytest.mark.parametrize(
    ("low", "high", "promote"),
    [(0.01, 0.2, True), (0.0, 0.2, False), (-0.01, 0.2, False), (-0.3, -0.1, False)],
)
def test_confidence_requires_lower_bound_above_zero(low: float, high: float, promote: bool) -> None:
    policy = GatePolicy(require_confidence=True)
    decision = decide(metrics(0.6), metrics(0.5), ci(low, high), policy)
    assert decision.promote is promote
    if not promote:
        assert "lower bound not above 0" in decision.reason
        assert f"[{low:+.4f}, {high:+.4f}]" in decision.reason


def test_confidence_required_but_no_interval_refuses() -> None:
    decision = decide(metrics(0.9), metrics(0.1), None, GatePolicy(require_confidence=True))
    assert not decision.promote
    assert "no bootstrap interval" in decision.reason


def test_both_requirements_reported_when_both_fail() -> None:
    policy = GatePolicy(min_improvement=0.05, require_confidence=True)
    decision = decide(metrics(0.51), metrics(0.5), ci(-0.02, 0.04), policy)
    assert not decision.promote
    assert "min improvement" in decision.reason and "lower bound" in decision.reason


def test_confidence_not_required_ignores_a_wide_interval() -> None:
    decision = decide(metrics(0.6), metrics(0.5), ci(-0.1, 0.3), GatePolicy())
    assert decision.promote
    assert "[-0.1000, +0.3000]" in decision.reason


def test_floor_does_not_apply_with_a_champion() -> None:
    decision = decide(metrics(0.2), metrics(0.1), None, GatePolicy(floor=0.5))
    assert decision.promote


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_candidate_never_promoted(bad: float) -> None:
    assert not decide(metrics(bad), None, None, GatePolicy()).promote
    assert not decide(metrics(bad), metrics(0.1), None, GatePolicy()).promote


def test_non_finite_champion_not_promoted() -> None:
    decision = decide(metrics(0.5), metrics(math.nan), None, GatePolicy())
    assert not decision.promote


def test_policy_recorded_in_decision() -> None:
    policy = GatePolicy(floor=0.2, min_improvement=0.01, require_confidence=True)
    assert decide(metrics(0.3), None, None, policy).policy == policy


@pytest.mark.parametrize(
    "kwargs", [{"floor": -0.1}, {"floor": 1.5}, {"min_improvement": 2}, {"surprise": 1}]
)
def test_policy_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GatePolicy(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- parity
def parity(passed: bool) -> ParityReport:
    return ParityReport(
        passed=passed,
        checker_ok=True,
        reason="ok" if passed else "max abs output difference 3.1 > tolerance 0.01",
        max_abs_diff=0.0 if passed else 3.1,
        output_tolerance=0.01,
        map_tolerance=0.01,
    )


def test_parity_failure_blocks_a_promotion_and_keeps_the_gate_reason() -> None:
    decision = decide(metrics(0.6), None, None, GatePolicy())
    blocked = apply_parity(decision, parity(False))
    assert not blocked.promote
    assert blocked.blocked_by is not None and "3.1 > tolerance 0.01" in blocked.blocked_by
    assert "ONNX parity failed" in blocked.reason and decision.reason in blocked.reason
    assert blocked.candidate_map50_95 == decision.candidate_map50_95


def test_parity_pass_or_no_promotion_leaves_decision_unchanged() -> None:
    decision = decide(metrics(0.6), None, None, GatePolicy())
    assert apply_parity(decision, parity(True)) == decision
    refused = decide(metrics(0.1), metrics(0.5), None, GatePolicy())
    assert apply_parity(refused, parity(False)) == refused


def test_decision_is_a_small_serializable_contract() -> None:
    decision = decide(metrics(0.6), metrics(0.5), ci(0.01, 0.2), GatePolicy(), champion_version=2)
    assert GateDecision.model_validate_json(decision.model_dump_json()) == decision
    assert len(decision.model_dump_json()) < 1000
