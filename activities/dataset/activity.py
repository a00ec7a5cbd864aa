"""The ``assemble_dataset`` activity: :func:`~activities.dataset.assemble.assemble` on a worker."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest, AssembleResult
from activities.contracts.inspection import DatasetValidation
from activities.dataset.assemble import assemble
from activities.dataset.dry_run import validate
from activities.infra.errors import translate_errors
from activities.infra.heartbeat import heartbeat_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore


class DatasetActivities:
    """Dataset activities bound to one store (dependency injection keeps tests free of globals)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.ASSEMBLE_DATASET, no_thread_cancel_exception=True)
    @translate_errors
    def assemble_dataset(self, request: AssembleRequest) -> AssembleResult:
        """Validated, content-hashed snapshot of ``request.prefix`` (reused when unchanged)."""
        return assemble(
            self.store, self.settings, request, progress=heartbeat_progress("dataset assembly")
        )

    @activity.defn(name=names.VALIDATE_DATASET, no_thread_cancel_exception=True)
    @translate_errors
    def validate_dataset(self, request: AssembleRequest) -> DatasetValidation:
        """What an assembly of ``request`` would find, without storing anything."""
        return validate(
            self.store, self.settings, request, progress=heartbeat_progress("dataset validation")
        )
