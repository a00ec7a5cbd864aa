"""Retention's decisions on listings (pure): which objects of a run or a publish may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.infra.storage import ObjectInfo
from activities.infra.workflow_runs import RunState
from activities.retention.registry import find_orphans
from activities.retention.runs import plan_run
from activities.retention.sweep import Policy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(
    now=NOW, grace=timedelta(hours=24), export_age=timedelta(days=7), failed_checkpoints=1
)
FOLDER = "runs/retrain-parts/"


def _info(key: str, age: timedelta) -> ObjectInfo:
    return ObjectInfo(key, 10, "etag", modified=NOW - age)


def _state(status: str, closed_ago: timedelta) -> RunState:
    return RunState("retrain-parts", "run-1", status, NOW - closed_ago)


def _keys(plan: dict[str, list[ObjectInfo]]) -> dict[str, list[str]]:
    return {kind: [i.key.removeprefix(FOLDER) for i in infos] for kind, infos in plan.items()}


def _never_published(_: ObjectInfo) -> bool:
    return False


HOUR = timedelta(hours=1)
RUN = [
    _info(f"{FOLDER}checkpoints/epoch-0001.pt", 5 * HOUR),
    _info(f"{FOLDER}checkpoints/epoch-0002.pt", 4 * HOUR),
    _info(f"{FOLDER}checkpoints/epoch-0003.pt", 3 * HOUR),
    _info(f"{FOLDER}control/stop_early", 3 * HOUR),
    _info(f"{FOLDER}export/model-aaaa.onnx", 3 * HOUR),
    _info(f"{FOLDER}best.pt", 3 * HOUR),
]


def test_a_completed_run_loses_every_checkpoint_and_control() -> None:
    plan = plan_run(FOLDER, RUN, _state("COMPLETED", 2 * HOUR), POLICY, _never_published)
    assert _keys(plan) == {
        "checkpoints": ["checkpoints/epoch-0003.pt", "checkpoints/epoch-0002.pt",
                        "checkpoints/epoch-0001.pt"],
        "controls": ["control/stop_early"],
        "exports": [],  # never published and younger than the export age: kept for now
    }  # fmt: skip


def test_a_failed_run_keeps_its_newest_checkpoints() -> None:
    for status in ("FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"):
        plan = plan_run(FOLDER, RUN, _state(status, 2 * HOUR), POLICY, _never_published)
        assert _keys(plan)["checkpoints"] == [
            "checkpoints/epoch-0002.pt",
            "checkpoints/epoch-0001.pt",
        ]
    keep_none = Policy(POLICY.now, POLICY.grace, POLICY.export_age, failed_checkpoints=0)
    plan = plan_run(FOLDER, RUN, _state("FAILED", 2 * HOUR), keep_none, _never_published)
    assert len(plan["checkpoints"]) == 3


def test_objects_written_after_the_run_closed_belong_to_a_later_run() -> None:
    """``retrain-{model}`` is reused: a new run's fresh checkpoint must survive a sweep that
    decided on the previous run (closed 4 hours ago)."""
    plan = plan_run(FOLDER, RUN, _state("COMPLETED", 4 * HOUR), POLICY, _never_published)
    assert _keys(plan)["checkpoints"] == ["checkpoints/epoch-0002.pt", "checkpoints/epoch-0001.pt"]
    assert plan["controls"] == []


def test_exports_go_when_published_or_old() -> None:
    state = _state("COMPLETED", 2 * HOUR)
    plan = plan_run(FOLDER, RUN, state, POLICY, lambda info: info.key.endswith("aaaa.onnx"))
    assert _keys(plan)["exports"] == ["export/model-aaaa.onnx"]  # the registry holds it
    old = [_info(f"{FOLDER}export/model-bbbb.onnx", timedelta(days=8))]
    assert plan_run(FOLDER, old, state, POLICY, _never_published)["exports"] == old


def test_a_run_temporal_does_not_know_waits_for_the_grace_period() -> None:
    young = plan_run(FOLDER, RUN, None, POLICY, _never_published)
    assert not any(young.values())
    aged = [_info(i.key, timedelta(days=2)) for i in RUN]
    plan = plan_run(FOLDER, aged, None, POLICY, _never_published)
    assert len(plan["checkpoints"]) == 2 and len(plan["controls"]) == 1  # unknown: as failed


def test_orphans_are_numbers_without_metadata_and_the_highest_is_known() -> None:
    day = timedelta(days=1)
    objects = [
        _info("models/parts/claims/v1.json", day),
        _info("models/parts/v1/model.pt", day),
        _info("models/parts/v1/metadata.json", day),
        _info("models/parts/claims/v2.json", day),
        _info("models/parts/v2/model.pt", day),
        _info("models/parts/v3/model.onnx", day),  # data without a claim
        _info("models/parts/claims/v4.json", day),
        _info("models/parts/aliases/production.json", day),
    ]
    orphans, highest = find_orphans("parts", objects)
    assert highest == 4
    assert [(o.version, o.claim is not None, len(o.data)) for o in orphans] == [
        (2, True, 1),
        (3, False, 1),
        (4, True, 0),
    ]
