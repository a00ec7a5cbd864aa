"""Pure parts of the registry: key layout, rollback target, report, bootstrap arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from activities.contracts.registry import AliasEvent, ArtifactRecord
from activities.evaluation.validate import ImageStats
from activities.infra.errors import NotFoundError
from activities.registry import layout
from activities.registry.aliases import rollback_target
from activities.registry.core import Scan
from activities.registry.report import evaluation_csv, render_report
from tests.helpers.factories import AT
from tests.helpers.registry_examples import EXAMPLES


def event(seq: int, version: int, previous: int | None, action: str) -> AliasEvent:
    return AliasEvent(
        seq=seq,
        version=version,
        previous_version=previous,
        action=action,  # type: ignore[arg-type]
        reason="r",
        request_id=f"q{seq}",
        at=AT,
    )


def test_layout_matches_the_issue() -> None:
    assert layout.artifact_key("parts", 3, "model.pt") == "models/parts/v3/model.pt"
    assert layout.metadata_key("parts", 12) == "models/parts/v12/metadata.json"
    assert layout.production_key("parts") == "models/parts/aliases/production.json"
    assert layout.latest_key("parts") == "models/parts/aliases/latest.json"
    assert layout.parse_metadata_key("models/parts/v12/metadata.json") == 12
    assert layout.parse_metadata_key("models/parts/v12/model.pt") is None
    assert layout.parse_claim_key(layout.claim_key("parts", 7)) == 7
    assert layout.parse_history_key(layout.history_key("parts", 42)) == 42
    a = layout.publish_key("parts", "retrain-parts", "run-1")
    assert a != layout.publish_key("parts", "retrain-parts", "run-2")
    assert a.startswith("models/parts/publishes/")


def test_scan_numbers() -> None:
    scan = Scan(versions={1, 2, 4}, claims={1, 2, 3, 4, 5})
    assert scan.highest_claimed == 5 and scan.pending == [3, 5]
    assert Scan().highest_claimed == 0


def test_rollback_goes_back_along_promotions() -> None:
    events = [event(1, 1, None, "publish"), event(2, 2, 1, "publish"), event(3, 3, 2, "promote")]
    assert rollback_target(events) == 2
    events.append(event(4, 2, 3, "rollback"))
    assert rollback_target(events) == 1  # undo the promotion that installed v2
    events.append(event(5, 1, 2, "rollback"))
    with pytest.raises(NotFoundError, match="no earlier promoted version"):
        rollback_target(events)
    with pytest.raises(NotFoundError):
        rollback_target([])


def test_rollback_after_manual_promote_of_an_old_version() -> None:
    events = [event(1, 1, None, "publish"), event(2, 2, 1, "publish"), event(3, 1, 2, "promote")]
    assert rollback_target(events) == 2


def test_report_is_deterministic_and_complete() -> None:
    request = next(e for e in EXAMPLES if type(e).__name__ == "PublishRequest")
    artifacts = {
        "model.pt": ArtifactRecord(key="models/parts/v3/model.pt", sha256="a" * 64, size=3)
    }
    text = render_report(request, 3, request.gate, artifacts)  # type: ignore[attr-defined]
    assert text == render_report(request, 3, request.gate, artifacts)  # type: ignore[attr-defined]
    expected = [
        "# parts v3",
        "PROMOTED",
        "| mAP50-95 | 0.6000 | 0.5000 | +0.1000 |",
        "CI of the mAP50-95 difference",
        "| test | 16 |",
        "a" * 64,
        "opset 18",
    ]
    for part in expected:
        assert part in text
    csv = evaluation_csv(request)  # type: ignore[arg-type]
    assert csv.splitlines()[0] == "model,precision,recall,mAP50,mAP50-95"
    assert len(csv.splitlines()) == 3


def test_image_stats_alignment() -> None:
    stats = ImageStats(
        files=["b.png", "a.png"],
        tp=[np.zeros((1, 10), bool), np.ones((2, 10), bool)],
        conf=[np.array([0.1]), np.array([0.9, 0.8])],
        pred_cls=[np.array([0.0]), np.array([1.0, 1.0])],
        target_cls=[np.array([0.0]), np.array([1.0])],
    )
    aligned = stats.aligned_to(["a.png", "b.png"])
    assert aligned.files == ["a.png", "b.png"] and len(aligned.tp[0]) == 2
    with pytest.raises(ValueError, match="different images"):
        stats.aligned_to(["a.png", "c.png"])
