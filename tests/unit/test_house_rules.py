"""The house rules in `.importlinter` bite: a forbidden import fails `lint-imports` with a
message that names the broken rule.

Runs import-linter on a copy of the product packages with one deliberately bad import added,
so the real tree is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("activities", "workflows", "workers")


def _copy_tree(target: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    shutil.copy(REPO_ROOT / ".importlinter", target / ".importlinter")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(
    ("module", "bad_import", "rule"),
    [
        (
            "workflows/gate.py",
            "from activities.infra.settings import Settings  # noqa",
            "Workflow definitions import only contracts",
        ),
        (
            "activities/contracts/common.py",
            "import minio  # noqa",
            "Contracts are pure data",
        ),
        (
            "workflows/client/api.py",
            "from activities.dataset import assemble  # noqa",
            "The client side (API, CLI) uses infrastructure and workflows",
        ),
        (  # only workflows/client/uploads.py may use the storage layer on the client side
            "workflows/client/api_weights.py",
            "from activities.infra.storage import ObjectStore  # noqa",
            "The client side (API, CLI) uses infrastructure and workflows",
        ),
        (
            "workflows/import_model.py",
            "from activities.weights import Catalog  # noqa",
            "Workflow definitions import only contracts",
        ),
        (
            "activities/infra/storage.py",
            "from activities.registry import core  # noqa",
            "Infrastructure knows no stage",
        ),
        (
            "workers/factory.py",
            "from workers.dev import stack  # noqa",
            "Product code never imports the development room",
        ),
    ],
)
def test_a_forbidden_import_fails_lint_naming_the_rule(
    tmp_path: Path, module: str, bad_import: str, rule: str
) -> None:
    _copy_tree(tmp_path)
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    _append(tmp_path / module, bad_import)
    broken = _lint_imports(tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    output = " ".join(broken.stdout.split())
    assert f"{rule}" in output and "BROKEN" in output, output
    assert module.removesuffix(".py").replace("/", ".") in output, output
