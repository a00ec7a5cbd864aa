"""The discipline of workflow changes (workflows/patches.py, docs/architecture.md): every
``workflow.patched`` / ``deprecate_patch`` guard names an id from ``workflows/patches.py``
listed for its phase, and every id still patched is taken by a recorded history."""

from __future__ import annotations

import ast

import pytest
from temporalio.client import WorkflowHistory

from tests.helpers.stack import REPO_ROOT
from tests.histories.facts import Facts, facts_of
from tests.histories.record import generations
from workflows import patches

GUARDS = {"patched": "PATCHED", "deprecate_patch": "DEPRECATED"}


def guard_problems(source: str, where: str) -> list[str]:
    """Guards in ``source`` that do not name a listed constant of ``workflows.patches``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in GUARDS
        ):
            continue
        phase = GUARDS[node.func.attr]
        arg = node.args[0] if node.args else None
        if not (
            isinstance(arg, ast.Attribute)
            and isinstance(arg.value, ast.Name)
            and arg.value.id == "patches"
        ):
            problems.append(f"{where}:{node.lineno}: {node.func.attr}() takes patches.NAME")
            continue
        patch_id = getattr(patches, arg.attr, None)
        if patch_id not in getattr(patches, phase):
            problems.append(f"{where}:{node.lineno}: patches.{arg.attr} is not in {phase}")
    return problems


def untaken(patched: dict[str, str], recorded: list[Facts]) -> set[str]:
    """Ids still patched that no recorded history took (their new path is never replayed)."""
    taken = {patch for facts in recorded for patch in facts.patches}
    return set(patched) - taken


def test_every_guard_in_workflow_code_names_a_listed_patch_id() -> None:
    problems = []
    for path in sorted((REPO_ROOT / "workflows").rglob("*.py")):
        problems += guard_problems(path.read_text(), str(path.relative_to(REPO_ROOT)))
    assert problems == []
    assert set(patches.PATCHED).isdisjoint(patches.DEPRECATED)


def test_every_patched_id_is_taken_by_a_history_of_the_newest_generation() -> None:
    newest_generation = generations()[-1]
    newest = [
        facts_of(WorkflowHistory.from_json(path.stem, path.read_text()))
        for path in sorted(newest_generation.glob("*.json"))
    ]
    assert newest, f"no histories in {newest_generation}"
    assert untaken(patches.PATCHED, newest) == set()


def test_the_checks_catch_a_literal_id_an_unlisted_id_and_an_untaken_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patches, "AUDIT", "audit-before-export", raising=False)
    monkeypatch.setattr(patches, "PATCHED", {"audit-before-export": "audit step (r42)"})
    source = (
        "if workflow.patched(patches.AUDIT): pass\n"
        "if workflow.patched('audit-before-export'): pass\n"
        "workflow.deprecate_patch(patches.AUDIT)\n"
        "if workflow.patched(patches.MISSING): pass\n"
    )
    assert guard_problems(source, "w.py") == [
        "w.py:2: patched() takes patches.NAME",
        "w.py:3: patches.AUDIT is not in DEPRECATED",
        "w.py:4: patches.MISSING is not in PATCHED",
    ]
    assert untaken(patches.PATCHED, [Facts(patches=[])]) == {"audit-before-export"}
    assert untaken(patches.PATCHED, [Facts(patches=["audit-before-export"])]) == set()
