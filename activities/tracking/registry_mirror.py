"""Mirroring our model registry into MLflow's: same version numbers, same ``production`` alias.

Ours is the source of truth; MLflow's is a copy for the people who look there. Every publish,
promote and rollback sends the model's whole state (:class:`RegistryState`, read from our
registry when the record is sent), and :func:`mirror` repairs whatever differs: versions
missing in MLflow are registered, the alias is moved or removed.

Same numbers: MLflow numbers a model's versions itself (highest ever + 1, deleted ones
included). Our numbers can have gaps (a claim whose run died), so registering our vN while
MLflow would say vK < N registers a placeholder first and deletes it, until K = N. A version
that still lands on another number (someone else registered versions of the same name
directly in MLflow) carries the tag ``sentinel.version`` with ours, and a warning is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activities.tracking.session import Session

log = logging.getLogger(__name__)

VERSION_TAG = "sentinel.version"
ALIAS = "production"
MAX_GAP = 1000
"""Placeholders registered at most to align one version's number."""


@dataclass(frozen=True)
class MirroredVersion:
    """One version of ours: its number, the retrain that made it, where its files are."""

    version: int
    workflow_run_id: str
    source: str


@dataclass(frozen=True)
class RegistryState:
    """Our registry's view of one model (``versions`` may stop below ``production``)."""

    model: str
    versions: tuple[MirroredVersion, ...]
    production: int | None


def mirror(session: Session, state: RegistryState) -> dict[int, int]:
    """Register what MLflow lacks and set its alias like ours; returns ours -> MLflow's number."""
    from mlflow.exceptions import MlflowException

    client = session.client
    try:
        client.create_registered_model(state.model, tags={"sentinel.source_of_truth": "sentinel"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    numbers = _registered(client, state.model)
    for ours in sorted(state.versions, key=lambda v: v.version):
        if ours.version not in numbers:
            numbers[ours.version] = _register(session, state.model, ours)
    _set_alias(client, state, numbers)
    return numbers


def _registered(client: Any, model: str) -> dict[int, int]:
    """Our version (its tag) -> MLflow's number, of the versions MLflow has (not deleted)."""
    found: dict[int, int] = {}
    for version in client.search_model_versions(f"name = '{model}'", max_results=10_000):
        tag = (version.tags or {}).get(VERSION_TAG)
        if tag and tag.isdigit():
            found.setdefault(int(tag), int(version.version))
    return found


def _register(session: Session, model: str, ours: MirroredVersion) -> int:
    """Register ``ours`` under its own number if MLflow's numbering allows it, linked to the
    MLflow run of the retrain that made it when there is one (not when tracking was off)."""
    client = session.client
    run_id = session.find_run(model, ours.workflow_run_id)
    tags = {VERSION_TAG: str(ours.version), "sentinel.workflow_run_id": ours.workflow_run_id}
    for _ in range(MAX_GAP):
        created = client.create_model_version(
            model, ours.source, run_id=run_id, tags=tags, await_creation_for=0
        )
        number = int(created.version)
        if number >= ours.version:
            if number > ours.version:
                log.warning(
                    "MLflow registered %s v%d as its version %d (MLflow already had higher "
                    "numbers); tag %s=%d names ours",
                    model, ours.version, number, VERSION_TAG, ours.version,
                )  # fmt: skip
            return number
        client.delete_model_version(model, created.version)  # a gap of ours: skip the number
    raise RuntimeError(f"could not align MLflow's version numbers of {model} with v{ours.version}")


def _set_alias(client: Any, state: RegistryState, numbers: dict[int, int]) -> None:
    current = client.get_registered_model(state.model).aliases.get(ALIAS)
    if state.production is None:
        if current is not None:
            client.delete_registered_model_alias(state.model, ALIAS)
        return
    wanted = numbers.get(state.production)
    if wanted is None:  # production is newer than this state: its own mirror will set it
        return
    if current is None or int(current) != wanted:
        client.set_registered_model_alias(state.model, ALIAS, str(wanted))
