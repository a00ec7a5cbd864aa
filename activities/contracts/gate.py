"""Contracts of the promotion gate (the decision itself is :func:`workflows.gate.decide`)."""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract


class GatePolicy(Contract):
    """When a candidate may replace production.

    * no champion: candidate mAP50-95 >= ``floor``;
    * champion: improvement (candidate - champion mAP50-95) >= ``min_improvement`` and, when
      ``require_confidence``, the lower bound of the bootstrap interval > 0;
    * champion, every class with at least ``min_class_instances`` test instances: refused when
      its AP50-95 drops by more than ``per_class_tolerance`` *and* the per-class bootstrap
      interval of the difference lies below 0 (the loss is not noise). ``per_class_tolerance``
      None switches this rule off.
    """

    floor: float = Field(0.0, ge=0, le=1, description="absolute mAP50-95 without a champion")
    min_improvement: float = Field(0.0, ge=-1, le=1, description="absolute mAP50-95 gain")
    require_confidence: bool = Field(False, description="lower CI bound of the gain must be > 0")
    per_class_tolerance: float | None = Field(
        0.05,
        ge=0,
        le=1,
        description="largest AP50-95 loss of one class accepted (None: no per-class rule)",
    )
    min_class_instances: int = Field(
        10, ge=1, description="classes with fewer test instances are not judged one by one"
    )
    metric: str | None = Field(
        None,
        description="the metric judged (activities/contracts/tasks.py names them); None: the "
        "task's primary metric (box mAP50-95 for detect and obb, mask mAP50-95 for segment, "
        "pose mAP50-95 for pose, top-1 accuracy for classify). ``floor`` and "
        "``min_improvement`` apply to it; the bootstrap interval and the per-class rule "
        "measure the primary metric (another metric is judged on point estimates)",
    )


class ClassLoss(Contract):
    """A class the candidate lost beyond the tolerance: the numbers the rule judged."""

    name: str
    instances: int = Field(description="test instances of the class")
    candidate_ap50_95: float
    champion_ap50_95: float
    difference: float = Field(description="candidate - champion AP50-95")
    ci_low: float | None = Field(None, description="None: judged on the point estimate alone")
    ci_high: float | None = None
    ci_level: float | None = None


class GateDecision(Contract):
    """Promote or not, why (in words, with the numbers), and the numbers themselves."""

    promote: bool
    reason: str
    candidate_map50_95: float = Field(
        description="the candidate's score on the judged metric (mAP50-95 for detect)"
    )
    metric: str | None = Field(
        None, description="the metric judged when not detect's mAP50-95 (e.g. mask_map50_95)"
    )
    champion_map50_95: float | None = None
    champion_version: int | None = None
    improvement: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    policy: GatePolicy = Field(default_factory=GatePolicy)
    blocked_by: str | None = Field(
        None, description="a later check that overruled a positive gate (e.g. ONNX parity)"
    )
    class_losses: list[ClassLoss] = Field(
        default_factory=list, description="classes refused by the per-class rule"
    )

    def blocked(self, why: str) -> GateDecision:
        """This decision with promotion refused because of ``why`` (reason keeps the gate's)."""
        if not self.promote:
            return self
        return self.model_copy(
            update={
                "promote": False,
                "blocked_by": why,
                "reason": f"not promoted: {why} (gate alone: {self.reason})",
            }
        )
