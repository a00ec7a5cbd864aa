"""Contracts of the promotion gate (the decision itself is :func:`workflows.gate.decide`)."""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract


class GatePolicy(Contract):
    """When a candidate may replace production.

    * no champion: candidate mAP50-95 >= ``floor``;
    * champion: improvement (candidate - champion mAP50-95) >= ``min_improvement`` and, when
      ``require_confidence``, the lower bound of the bootstrap interval > 0.
    """

    floor: float = Field(0.0, ge=0, le=1, description="absolute mAP50-95 without a champion")
    min_improvement: float = Field(0.0, ge=-1, le=1, description="absolute mAP50-95 gain")
    require_confidence: bool = Field(False, description="lower CI bound of the gain must be > 0")


class GateDecision(Contract):
    """Promote or not, why (in words, with the numbers), and the numbers themselves."""

    promote: bool
    reason: str
    candidate_map50_95: float
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
