"""Fault-injection suite: trials per kind, seeds and the summary table.

``SENTINEL_FAULT_TRIALS`` (default 1: the short CI version) sets the trials per fault kind,
``SENTINEL_FAULT_SEED`` (default 7) the seed every random choice derives from. The table is
printed at the end of the session (and appended to ``SENTINEL_FAULT_TABLE`` when set).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import pytest

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev import synthetic

TRIALS = int(os.environ.get("SENTINEL_FAULT_TRIALS", "1"))
SEED = int(os.environ.get("SENTINEL_FAULT_SEED", "7"))


@dataclass
class Row:
    """Outcomes of one fault kind over its trials.

    ``landed``: trials whose fault the server's records prove happened where it was meant to
    (inside the stage's activity); ``redrawn``: draws not counted because the fault missed
    (e.g. the activity had already ended when the kill came) and were drawn again.
    """

    trials: int = 0
    landed: int = 0
    redrawn: int = 0
    completed: int = 0
    duplicates: int = 0
    lost_production: int = 0
    orphans: int = 0
    bad_artifacts: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


TABLE: dict[str, Row] = {}


def render_table() -> str:
    header = (
        "| fault | trials | landed in stage | re-drawn | completed | duplicate versions "
        "| lost production models | orphan objects | bad artifacts | mean s/trial |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, row in TABLE.items():
        mean = row.seconds / row.trials if row.trials else 0.0
        lines.append(
            f"| {kind} | {row.trials} | {row.landed} | {row.redrawn} | {row.completed} | "
            f"{row.duplicates} | {row.lost_production} | {row.orphans} | {row.bad_artifacts} | "
            f"{mean:.0f} |"
        )
    notes = [f"- {kind}: {note}" for kind, row in TABLE.items() for note in row.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE:
        return
    table = render_table()
    terminalreporter.section(f"fault injection (trials={TRIALS}, seed={SEED})")
    terminalreporter.write_line(table)
    if path := os.environ.get("SENTINEL_FAULT_TABLE"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(table + "\n")


@pytest.fixture(scope="module")
def prefix(settings: Settings, store: ObjectStore) -> str:
    """24 verified synthetic images, uploaded once per module: every trial's dataset."""
    prefix = f"datasets/faults-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=3, verified=True
    )
    return prefix
