"""Production alias races at the same instant, through Temporal, on the real S3 server.

Each trial runs the registry activities on a real worker whose store holds the two history
writes at a barrier, so both movers have read the same production version and write the same
history entry at the same instant (no sleeps: the barrier decides when). Repeat with::

    SENTINEL_FAULT_TRIALS=10 .venv/bin/pytest tests/faults/test_alias_races.py -q -s

After every trial: one consistent history (entries 1..n, each move from the version the
previous one left, ``production.json`` equal to the newest entry), one move made and the
other refused naming the version production had become.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from activities.contracts.registry import PromoteVersionResult, PublishResult, RollbackResult
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import aliases, layout
from activities.registry.core import Registry
from tests.faults.conftest import TABLE, TRIALS, Row
from tests.helpers.factories import unique_model
from tests.helpers.registry_setup import (
    GatedStore,
    alias_history_problems,
    published_chain,
    stored_publish_request,
)
from tests.helpers.stack import Queues, sentinel_for
from tests.helpers.stage_workflows import PublishWorkflow
from workers import wiring
from workflows.client.cli import failure_message

pytestmark = pytest.mark.timeout(60 + 40 * TRIALS)


@asynccontextmanager
async def gated_worker(
    client: Client, queues: Queues, store: ObjectStore, model: str
) -> AsyncIterator[GatedStore]:
    """A CPU worker (product workflows, the test's publish workflow, the real registry
    activities) whose store starts the first two alias history writes of ``model`` together."""
    gated = GatedStore(store, layout.history_prefix(model))
    worker = Worker(
        client,
        task_queue=queues.cpu,
        workflows=[*wiring.workflows(), PublishWorkflow],
        activities=wiring.activities("cpu", queues.settings, gated),
        activity_executor=ThreadPoolExecutor(max_workers=4),
        max_concurrent_activities=4,
    )
    async with worker:
        yield gated


def _moves(store: ObjectStore, settings: Settings, model: str) -> list[tuple[str, int, int | None]]:
    registry = Registry(store, settings.models_bucket)
    return [(e.action, e.version, e.previous_version) for e in aliases.history(registry, model)]


def _tally(kind: str, started: float, *, consistent: bool, extra_moves: int, lost: bool) -> None:
    row = TABLE.setdefault(kind, Row())
    row.trials += 1
    row.completed += consistent
    row.duplicates += extra_moves
    row.lost_production += lost
    row.seconds += time.monotonic() - started


async def test_two_rollbacks_at_the_same_instant_move_production_back_one_step(
    client: Client, queues: Queues, store: ObjectStore, settings: Settings
) -> None:
    sentinel = sentinel_for(client, queues)
    for _ in range(TRIALS):
        started = time.monotonic()
        model = unique_model("race")
        published_chain(store, settings, model, 3)  # production v3: v1 -> v2 -> v3
        async with gated_worker(client, queues, store, model) as gated:
            outcomes = await asyncio.gather(
                *(sentinel.rollback(model, f"op {n}", expect_production=3) for n in range(2)),
                return_exceptions=True,
            )
        moved = [o for o in outcomes if isinstance(o, RollbackResult)]
        refused = [
            failure_message(o.cause) for o in outcomes if isinstance(o, WorkflowFailureError)
        ]
        moves = _moves(store, settings, model)
        problems = alias_history_problems(store, settings, model)
        _tally(
            "two rollbacks at the same instant",
            started,
            consistent=not problems and len(moved) == 1,
            extra_moves=len(moves) - 4,
            lost=moves[-1][1] != 2,
        )
        assert gated.arrivals == 2, "the two rollbacks did not race"
        assert not problems, problems
        assert [(m.from_version, m.to_version) for m in moved] == [(3, 2)], outcomes
        assert len(refused) == 1 and re.fullmatch(
            f"production of {model!r} is v2, not v3 as the caller saw it: refusing to roll it "
            "back( to v2)?; look again and decide on v2",
            refused[0],
        ), refused
        assert moves[3:] == [("rollback", 2, 3)]


async def test_a_promote_racing_a_publish_leaves_one_consistent_history(
    client: Client, queues: Queues, store: ObjectStore, settings: Settings
) -> None:
    sentinel = sentinel_for(client, queues)
    winners: dict[str, int] = {"promote": 0, "publish": 0}
    for trial in range(TRIALS):
        started = time.monotonic()
        model = unique_model("race")
        published_chain(store, settings, model, 1)  # production v1
        kept = stored_publish_request(store, settings, model, promote=False, champion_version=1)
        async with gated_worker(client, queues, store, model) as gated:
            await client.execute_workflow(  # v2: registered, not promoted
                PublishWorkflow.run, kept, id=f"keep-{model}", task_queue=queues.cpu
            )
            # A retrain evaluated against v1 publishes v3 while an operator promotes v2.
            v3 = stored_publish_request(store, settings, model, champion_version=1)
            outcomes = await asyncio.gather(
                sentinel.promote(model, 2, "operator", expect_production=1),
                client.execute_workflow(
                    PublishWorkflow.run, v3, id=f"publish-{model}-{trial}", task_queue=queues.cpu
                ),
                return_exceptions=True,
            )
        promote, publish = outcomes
        assert isinstance(publish, PublishResult), publish
        moves = _moves(store, settings, model)
        problems = alias_history_problems(store, settings, model)
        production = moves[-1][1]
        _tally(
            "promote racing a publish",
            started,
            consistent=not problems and len(moves) == 2,
            extra_moves=len(moves) - 2,
            lost=publish.production_version != production,
        )
        assert gated.arrivals == 2, "the promote and the publish did not race"
        assert not problems, problems
        assert publish.version == 3 and publish.production_version == production
        if isinstance(promote, PromoteVersionResult):  # the operator first: v3 stays out
            winners["promote"] += 1
            assert moves == [("publish", 1, None), ("promote", 2, 1)]
            assert (promote.previous_version, promote.version) == (1, 2)
            assert not publish.promoted
            assert f"production of {model!r} is v2, not v1 as the caller saw it" in publish.reason
        else:  # the publish first: the operator's promote is refused, naming v3
            winners["publish"] += 1
            assert isinstance(promote, WorkflowFailureError), promote
            assert moves == [("publish", 1, None), ("publish", 3, 1)]
            assert publish.promoted
            assert failure_message(promote.cause) == (
                f"production of {model!r} is v3, not v1 as the caller saw it: refusing to "
                "promote v2; look again and decide on v3"
            )
    TABLE["promote racing a publish"].notes.append(
        f"first to move: {winners}; 'duplicate versions' counts extra production moves here"
    )
