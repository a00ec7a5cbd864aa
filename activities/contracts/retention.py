"""Contracts of retention (``sentinel registry gc``): what may be deleted, and what was.

What is swept (``activities/retention/``; never a version that exists, never an object of a
running workflow):

* ``checkpoints``: per-epoch checkpoints of finished runs (all of a completed run; all but the
  newest ``SENTINEL_RETENTION_FAILED_CHECKPOINTS`` of a failed or canceled one);
* ``controls``: stop-early control objects of finished runs;
* ``exports``: ONNX exports of finished runs, at once when the registry holds their content
  (published), else after ``SENTINEL_RETENTION_EXPORT_DAYS``;
* ``partial_versions``: objects under ``models/{name}/v{N}/`` without ``metadata.json``, left
  by a publish that never finished, older than the grace period;
* ``orphan_claims`` and ``publish_indexes``: the bookkeeping of those dead publishes (the
  highest claim of a model stays, so that version numbers never go down).
"""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract

CATEGORIES = (
    "checkpoints",
    "controls",
    "exports",
    "partial_versions",
    "orphan_claims",
    "publish_indexes",
)


class GcRequest(Contract):
    """Sweep the runs and models buckets (``dry_run``: only say what would go)."""

    dry_run: bool = False
    grace_hours: float | None = Field(
        None, ge=0, description="age before orphans are swept; default the worker's setting"
    )


class GcCategory(Contract):
    """Objects of one category deleted (or, in a dry run, that would be)."""

    objects: int = 0
    bytes: int = 0
    examples: list[str] = Field(default_factory=list, description="the first keys")


class GcResult(Contract):
    """What one sweep deleted (or would delete), per category."""

    dry_run: bool
    categories: dict[str, GcCategory]
    runs_seen: int = Field(description="runs/{workflow_id}/ folders looked at")
    models_seen: int = Field(description="models/{name}/ folders looked at")
    skipped_running: list[str] = Field(
        default_factory=list, description="workflow ids left alone because they run (first 50)"
    )
    watermarks: list[str] = Field(
        default_factory=list, description="dead claims kept: the highest number of their model"
    )

    @property
    def objects(self) -> int:
        return sum(category.objects for category in self.categories.values())
