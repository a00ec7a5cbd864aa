"""README's configuration table tells the truth about the settings class."""

from __future__ import annotations

import re

from activities.infra.settings import Settings
from tests.conftest import REPO_ROOT


def test_readme_table_lists_exactly_the_settings() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    table = re.findall(r"^\| `(SENTINEL_[A-Z0-9_]+)` \| `([^`]*)` \|", readme, re.MULTILINE)
    documented = {name: default for name, default in table}
    expected = {f"SENTINEL_{name.upper()}": field for name, field in Settings.model_fields.items()}
    assert set(documented) == set(expected), "README configuration table is out of date"
    for name, field in expected.items():
        if name != "SENTINEL_CACHE_DIR":
            assert documented[name] == str(field.default), f"default of {name} differs"


def test_readme_shows_the_two_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
