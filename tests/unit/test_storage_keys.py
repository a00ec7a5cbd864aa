"""Object keys can never write outside the target directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.infra.errors import UnsafeKeyError
from activities.infra.storage import safe_join


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a\\..\\b", "", "a/./b", "a\x00b"]
)
def test_unsafe_keys_rejected(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafeKeyError, match="unsafe object key"):
        safe_join(tmp_path, key)


def test_safe_key_stays_inside(tmp_path: Path) -> None:
    path = safe_join(tmp_path, "images/a/b.png")
    assert path == tmp_path / "images" / "a" / "b.png"
    assert path.resolve().is_relative_to(tmp_path.resolve())
