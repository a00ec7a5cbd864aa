"""The stub workers serve exactly the activities the real workers register, per queue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity

from activities.infra.settings import Settings
from activities.infra.signing import ensure_key_file
from activities.infra.storage import ObjectStore
from tests.workflows.stubs import Stubs
from workers import wiring


def _names(functions: list[Callable[..., Any]]) -> list[str]:
    names = []
    for function in functions:
        definition = activity._Definition.from_callable(function)
        assert definition is not None and definition.name is not None, function
        names.append(definition.name)
    return sorted(names)


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_stub_activities_are_the_wired_ones(kind: wiring.QueueKind, tmp_path: Path) -> None:
    settings = Settings(
        s3_access_key="unused",  # type: ignore[arg-type]  # why: pydantic coerces to SecretStr
        s3_secret_key="unused",  # type: ignore[arg-type]
        signing_key_file=ensure_key_file(tmp_path / "signing.keys"),  # read at construction
    )
    store = ObjectStore.from_settings(settings)  # built, never contacted
    stubs = Stubs()
    wired = wiring.activities(kind, settings, store)
    stubbed = stubs.cpu_activities() if kind == "cpu" else stubs.gpu_activities()
    assert _names(stubbed) == _names(wired)
