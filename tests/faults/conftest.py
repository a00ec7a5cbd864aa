"""Fault-injection suite: trials per kind, seeds and the summary table.

``SENTINEL_FAULT_TRIALS`` (default 1: the short CI version) sets the trials per fault kind,
``SENTINEL_FAULT_SEED`` (default 7) the seed every random choice derives from. The table is
printed at the end of the session (and appended to ``SENTINEL_FAULT_TABLE`` when set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

TRIALS = int(os.environ.get("SENTINEL_FAULT_TRIALS", "1"))
SEED = int(os.environ.get("SENTINEL_FAULT_SEED", "7"))


@dataclass
class Row:
    """Outcomes of one fault kind over its trials."""

    trials: int = 0
    completed: int = 0
    duplicates: int = 0
    lost_production: int = 0
    orphans: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


TABLE: dict[str, Row] = {}


def render_table() -> str:
    header = (
        "| fault | trials | completed | duplicate versions | lost production models "
        "| orphan objects | mean s/trial |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, row in TABLE.items():
        mean = row.seconds / row.trials if row.trials else 0.0
        lines.append(
            f"| {kind} | {row.trials} | {row.completed} | {row.duplicates} | "
            f"{row.lost_production} | {row.orphans} | {mean:.0f} |"
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
