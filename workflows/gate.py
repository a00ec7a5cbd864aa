"""The promotion gate: a pure function of the evaluation numbers and the policy.

Workflow code calls it directly (no activity), so it imports only stdlib and contracts.
Comparisons allow ``EPS`` of floating-point noise, so a gain of exactly ``min_improvement``
(or a score exactly at the floor) passes.

:func:`decide` judges the overall numbers; :func:`protect_classes` then applies the per-class
rule (a candidate that gains overall while one class collapses is refused, naming the class);
:func:`apply_parity` blocks promotion on a failed ONNX parity check.
"""

from __future__ import annotations

import math

from activities.contracts.evaluation import DifferenceCI, EvaluateResult, ModelMetrics
from activities.contracts.export import ParityReport
from activities.contracts.gate import ClassLoss, GateDecision, GatePolicy
from activities.contracts.tasks import PRIMARY_METRIC, metric_label

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

    The score judged is ``policy.metric`` of the candidate's task (None: the task's primary
    metric, :mod:`activities.contracts.tasks`); detect's is mAP50-95, as always.

    * No champion: promote when candidate mAP50-95 >= ``policy.floor``.
    * Champion: promote when the improvement >= ``policy.min_improvement`` and, if
      ``policy.require_confidence``, the lower bound of ``ci`` is > 0 (no interval: refused).

    The reason names the numbers it was decided on.
    """
    judged = candidate.score(policy.metric)
    # Detect with its default metric keeps its words ("mAP50-95") and its payloads (no metric).
    named = policy.metric is not None or candidate.task != "detect"
    metric = (policy.metric or PRIMARY_METRIC[candidate.task]) if named else None
    label = metric_label(candidate.task, metric) if named else "mAP50-95"
    cand = judged if judged is not None else 0.0
    if metric is not None and metric != PRIMARY_METRIC[candidate.task]:
        ci = None  # the bootstrap measures the primary metric: another one has point estimates
    base = GateDecision(
        promote=False,
        reason="",
        candidate_map50_95=cand,
        metric=metric,
        champion_version=champion_version,
        policy=policy,
        ci_low=ci.low if ci else None,
        ci_high=ci.high if ci else None,
        ci_level=ci.level if ci else None,
    )
    if judged is None:
        return base.model_copy(
            update={
                "reason": f"not promoted: {metric} is not measured for a {candidate.task} model"
            }
        )
    if not math.isfinite(cand):
        return base.model_copy(
            update={"reason": f"not promoted: candidate {label} is {cand} (not a number)"}
        )
    if champion is None:
        ok = cand >= policy.floor - EPS
        verdict = "promoted" if ok else "not promoted"
        relation = ">=" if ok else "<"
        return base.model_copy(
            update={
                "promote": ok,
                "reason": f"{verdict}: no champion to compare; candidate {label} "
                f"{_f(cand)} {relation} floor {_f(policy.floor)}",
            }
        )
    champ = champion.score(policy.metric)
    return _against_champion(base, champ if champ is not None else float("nan"), ci, policy, label)


def _against_champion(
    base: GateDecision,
    champ: float,
    ci: DifferenceCI | None,
    policy: GatePolicy,
    label: str = "mAP50-95",
) -> GateDecision:
    """``base`` decided on the improvement over a champion scoring ``champ``."""
    cand = base.candidate_map50_95
    version = base.champion_version
    metric = label
    label = f"champion v{version}" if version is not None else "champion"
    improvement = cand - champ
    numbers = {"champion_map50_95": champ, "improvement": improvement}
    head = f"candidate {metric} {_f(cand)} vs {label} {_f(champ)} ({_signed(improvement)})"
    if not math.isfinite(champ):
        return base.model_copy(
            update={**numbers, "reason": f"not promoted: {label} {metric} is {champ}"}
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


def class_losses(evaluation: EvaluateResult, policy: GatePolicy) -> list[ClassLoss]:
    """The classes the candidate lost beyond ``policy.per_class_tolerance``, in class order.

    Judged: classes with at least ``policy.min_class_instances`` test instances and an AP of
    both models. A class is lost when its AP50-95 difference is below ``-tolerance`` and its
    bootstrap interval (``evaluation.per_class_ci``) lies entirely below 0; without an interval
    (an evaluation made before per-class intervals existed) the point estimate decides.
    """
    tolerance = policy.per_class_tolerance
    champion = evaluation.champion
    if tolerance is None or champion is None:
        return []
    losses = []
    for name in evaluation.class_names:
        instances = evaluation.instances_per_class.get(name, 0)
        cand = evaluation.candidate.per_class_ap50_95.get(name)
        champ = champion.per_class_ap50_95.get(name)
        if instances < policy.min_class_instances or cand is None or champ is None:
            continue
        ci = evaluation.per_class_ci.get(name)
        difference = ci.estimate if ci is not None else cand - champ
        beyond_noise = ci is None or ci.high < 0
        if difference < -tolerance - EPS and beyond_noise:
            losses.append(
                ClassLoss(
                    name=name,
                    instances=instances,
                    candidate_ap50_95=cand,
                    champion_ap50_95=champ,
                    difference=difference,
                    ci_low=ci.low if ci else None,
                    ci_high=ci.high if ci else None,
                    ci_level=ci.level if ci else None,
                )
            )
    return losses


def describe_loss(loss: ClassLoss, tolerance: float, score: str = "AP50-95") -> str:
    """One class loss in words, with its numbers (for reasons and reports)."""
    interval = (
        f", {loss.ci_level:.0%} CI [{_signed(loss.ci_low)}, {_signed(loss.ci_high)}]"
        if loss.ci_low is not None and loss.ci_high is not None and loss.ci_level is not None
        else " (no interval: point estimate)"
    )
    return (
        f"class '{loss.name}' {score} {_f(loss.champion_ap50_95)} -> "
        f"{_f(loss.candidate_ap50_95)} ({_signed(loss.difference)}{interval}; "
        f"{loss.instances} test instances) loses more than the per-class tolerance {_f(tolerance)}"
    )


def protect_classes(decision: GateDecision, evaluation: EvaluateResult) -> GateDecision:
    """``decision`` refused when a class lost more than the per-class tolerance.

    The policy is the decision's own. A refusal names every lost class with its numbers; an
    already refused decision keeps its reason and gains the class losses.
    """
    policy = decision.policy
    losses = class_losses(evaluation, policy)
    if not losses or policy.per_class_tolerance is None:
        return decision
    # The per-class scores are the primary metric's: AP50-95 of its matches, or accuracy.
    score = "accuracy" if evaluation.candidate.task == "classify" else "AP50-95"
    if evaluation.candidate.task in ("segment", "pose"):
        score = f"{'mask' if evaluation.candidate.task == 'segment' else 'pose'} AP50-95"
    tolerance = policy.per_class_tolerance
    text = "; ".join(describe_loss(loss, tolerance, score) for loss in losses)
    if decision.promote:
        reason = f"not promoted: {text} (overall: {decision.reason})"
    else:
        reason = f"{decision.reason}; {text}"
    return decision.model_copy(update={"promote": False, "reason": reason, "class_losses": losses})


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
