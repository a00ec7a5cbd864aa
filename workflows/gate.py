"""The promotion gate: a pure function of the evaluation numbers and the policy.

Workflow code calls it directly (no activity), so it imports only stdlib and contracts.
Comparisons allow ``EPS`` of floating-point noise, so a gain of exactly ``min_improvement``
(or a score exactly at the floor) passes.
"""

from __future__ import annotations

import math

from activities.contracts.evaluation import DifferenceCI, ModelMetrics
from activities.contracts.export import ParityReport
from activities.contracts.gate import GateDecision, GatePolicy

EPS = 1e-9


def _f(value: float) -> str:
    return f"{value:.4f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def decide(
    candidate: ModelMetrics,
    champion: ModelMetrics | None,
    ci: DifferenceCI | None,
    policy: GatePolicy,
    *,
    champion_version: int | None = None,
) -> GateDecision:
    """Promote ``candidate`` over ``champion`` (None: no comparable champion) under ``policy``.

    * No champion: promote when candidate mAP50-95 >= ``policy.floor``.
    * Champion: promote when the improvement >= ``policy.min_improvement`` and, if
      ``policy.require_confidence``, the lower bound of ``ci`` is > 0 (no interval: refused).

    The reason names the numbers it was decided on.
    """
    cand = candidate.map50_95
    base = GateDecision(
        promote=False,
        reason="",
        candidate_map50_95=cand,
        champion_version=champion_version,
        policy=policy,
        ci_low=ci.low if ci else None,
        ci_high=ci.high if ci else None,
        ci_level=ci.level if ci else None,
    )
    if not math.isfinite(cand):
        return base.model_copy(
            update={"reason": f"not promoted: candidate mAP50-95 is {cand} (not a number)"}
        )
    if champion is None:
        ok = cand >= policy.floor - EPS
        verdict = "promoted" if ok else "not promoted"
        relation = ">=" if ok else "<"
        return base.model_copy(
            update={
                "promote": ok,
                "reason": f"{verdict}: no champion to compare; candidate mAP50-95 "
                f"{_f(cand)} {relation} floor {_f(policy.floor)}",
            }
        )
    return _against_champion(base, champion.map50_95, ci, policy)


def _against_champion(
    base: GateDecision, champ: float, ci: DifferenceCI | None, policy: GatePolicy
) -> GateDecision:
    """``base`` decided on the improvement over a champion scoring ``champ``."""
    cand = base.candidate_map50_95
    version = base.champion_version
    label = f"champion v{version}" if version is not None else "champion"
    improvement = cand - champ
    numbers = {"champion_map50_95": champ, "improvement": improvement}
    head = f"candidate mAP50-95 {_f(cand)} vs {label} {_f(champ)} ({_signed(improvement)})"
    if not math.isfinite(champ):
        return base.model_copy(
            update={**numbers, "reason": f"not promoted: {label} mAP50-95 is {champ}"}
        )
    problems: list[str] = []
    if improvement < policy.min_improvement - EPS:
        problems.append(
            f"improvement {_signed(improvement)} < min improvement "
            f"{_signed(policy.min_improvement)}"
        )
    ci_text = ""
    if ci is not None:
        ci_text = f"{ci.level:.0%} CI of the difference [{_signed(ci.low)}, {_signed(ci.high)}]"
    if policy.require_confidence:
        if ci is None:
            problems.append("confidence required but no bootstrap interval was computed")
        elif not ci.low > 0:
            problems.append(f"{ci_text}: lower bound not above 0 (confidence required)")
    if problems:
        return base.model_copy(
            update={**numbers, "reason": f"not promoted: {head}; " + "; ".join(problems)}
        )
    checks = [
        f"improvement {_signed(improvement)} >= min improvement {_signed(policy.min_improvement)}"
    ]
    if ci is not None:
        checks.append(ci_text + (" lower bound > 0" if policy.require_confidence else ""))
    return base.model_copy(
        update={**numbers, "promote": True, "reason": f"promoted: {head}; " + "; ".join(checks)}
    )


def apply_parity(decision: GateDecision, parity: ParityReport) -> GateDecision:
    """``decision`` with promotion blocked when the ONNX parity check failed.

    The only place ONNX parity decides anything: the publish activity takes the resulting
    decision as it is (and refuses one that promotes despite a failed check).
    """
    if parity.passed:
        return decision
    return decision.blocked(f"ONNX parity failed: {parity.reason}")


def import_decision(candidate: ModelMetrics, champion_version: int | None) -> GateDecision:
    """The decision on a model imported as it runs today: it becomes production.

    Nothing is gated: the team already serves it, and it is the champion the next retrain must
    beat. Only a production version that appeared meanwhile (``champion_version``, a retrain
    that published first) keeps its place: the import is then registered, not promoted.
    """
    cand = candidate.map50_95
    base = GateDecision(
        promote=False, reason="", candidate_map50_95=cand, champion_version=champion_version
    )
    if champion_version is not None:
        return base.model_copy(
            update={
                "reason": f"not promoted: production is v{champion_version} already; an "
                "import becomes production only of a model that has none"
            }
        )
    return base.model_copy(
        update={
            "promote": True,
            "reason": f"promoted: imported as the model in production today (mAP50-95 "
            f"{_f(cand)} on the test split); the next retrain is gated against it",
        }
    )
