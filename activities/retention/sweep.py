"""The retention policy and the accounting of one sweep (what went, or would go, per kind)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from activities.contracts.retention import CATEGORIES, GcCategory, GcResult
from activities.infra.storage import ObjectInfo, ObjectStore

MAX_EXAMPLES = 20
MAX_SKIPPED = 50


@dataclass(frozen=True)
class Policy:
    """Ages and counts that decide what is old enough to go (``now``: the sweep's clock)."""

    now: datetime
    grace: timedelta
    export_age: timedelta
    failed_checkpoints: int

    def older_than(self, info: ObjectInfo, age: timedelta) -> bool:
        """Modified more than ``age`` ago (an object without a date is never old)."""
        return info.modified is not None and info.modified < self.now - age


@dataclass
class Sweep:
    """Deletes (unless ``dry_run``) and counts, per category."""

    store: ObjectStore
    dry_run: bool
    categories: dict[str, GcCategory] = field(
        default_factory=lambda: {name: GcCategory() for name in CATEGORIES}
    )
    runs_seen: int = 0
    models_seen: int = 0
    skipped_running: list[str] = field(default_factory=list)
    watermarks: list[str] = field(default_factory=list)

    def delete(self, bucket: str, category: str, objects: Iterable[ObjectInfo]) -> None:
        """Delete ``objects`` of ``category`` from ``bucket`` (or only count them)."""
        doomed = list(objects)
        if not doomed:
            return
        if not self.dry_run:
            self.store.delete_many(bucket, [info.key for info in doomed])
        tally = self.categories[category]
        room = MAX_EXAMPLES - len(tally.examples)
        self.categories[category] = GcCategory(
            objects=tally.objects + len(doomed),
            bytes=tally.bytes + sum(max(info.size, 0) for info in doomed),
            examples=tally.examples + [f"{bucket}/{info.key}" for info in doomed[:room]],
        )

    def skip_running(self, workflow_id: str) -> None:
        if len(self.skipped_running) < MAX_SKIPPED:
            self.skipped_running.append(workflow_id)

    def result(self) -> GcResult:
        return GcResult(
            dry_run=self.dry_run,
            categories=dict(self.categories),
            runs_seen=self.runs_seen,
            models_seen=self.models_seen,
            skipped_running=list(self.skipped_running),
            watermarks=list(self.watermarks),
        )
