"""Every recorded history replays on the current workflow code, and covers every outcome.

A change to workflow code that would break runs in flight (a command added, removed or
reordered without a ``workflow.patched`` guard) fails here before it is deployed; see
"Upgrading workflow code" in docs/architecture.md. Histories are recorded by
``python -m tests.histories.record`` into one directory per generation; every generation is
replayed, and the newest (generations are named ``YYYY-MM-DD[-what]``) must hold every
outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.histories.facts import facts_of
from tests.histories.outcomes import BY_NAME, OUTCOMES
from tests.histories.record import DATED, HISTORIES, generations
from workers import wiring

FILES = sorted(HISTORIES.rglob("*.json"))
GENERATIONS = generations()


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", path.read_text())


def test_the_newest_generation_holds_every_outcome() -> None:
    assert GENERATIONS, f"no recorded generation in {HISTORIES}: python -m tests.histories.record"
    undated = [g.name for g in GENERATIONS if not DATED.match(g.name)]
    assert undated == [], "generations are named YYYY-MM-DD[-what], so the newest sorts last"
    newest = {path.stem for path in GENERATIONS[-1].glob("*.json")}
    recorded_by_script = {outcome.name for outcome in OUTCOMES if outcome.script is not None}
    assert recorded_by_script - newest == set(), f"missing in {GENERATIONS[-1].name}"
    elsewhere = {outcome.name for outcome in OUTCOMES if outcome.script is None}
    assert elsewhere <= {path.stem for path in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_recorded_history_shows_the_outcome_it_is_named_after(path: Path) -> None:
    outcome = BY_NAME.get(path.stem)
    assert outcome is not None, f"{path.name} names no outcome of tests/histories/outcomes.py"
    facts = facts_of(_load(path))
    assert facts.workflow_type == outcome.workflow
    assert outcome.shows(facts), facts


async def test_every_recorded_history_replays_on_the_current_code() -> None:
    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in FILES:
            yield _load(path)

    replayer = Replayer(workflows=wiring.workflows(), data_converter=pydantic_data_converter)
    replayed, failures = [], {}
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            replayed.append(result.history.workflow_id)
            if result.replay_failure is not None:
                failures[result.history.workflow_id] = repr(result.replay_failure)
    assert failures == {}
    assert len(replayed) == len(FILES) > 0
