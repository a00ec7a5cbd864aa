"""The models bucket: what publishes that never finished leave behind.

A version exists when its ``metadata.json`` exists, and nothing under such a ``v{N}/`` is ever
touched. A claimed number without metadata belongs to a publish in progress or to a run that
died for good; once everything of it (claim, data objects) is older than the grace period and
its owning workflow run (named in the claim) is not running, its data objects
(``partial_versions``), the run's ``publishes/`` index naming it and the claim itself go. The
highest claim of a model stays as a watermark, so that the next publish never reuses a number
(numbers only grow: a gap, never a collision; ``docs/registry.md``). ``metadata.json`` is
checked once more right before deleting.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from activities.infra.errors import NotFoundError
from activities.infra.heartbeat import Progress
from activities.infra.storage import ObjectInfo, ObjectStore
from activities.infra.workflow_runs import WorkflowRuns
from activities.registry import layout
from activities.registry.core import Registry
from activities.retention.sweep import Policy, Sweep

MODELS = "models/"


@dataclass(frozen=True)
class Orphan:
    """A claimed or partly written version number without metadata."""

    model: str
    version: int
    claim: ObjectInfo | None
    data: list[ObjectInfo]

    @property
    def objects(self) -> list[ObjectInfo]:
        return ([self.claim] if self.claim else []) + self.data


def find_orphans(model: str, objects: list[ObjectInfo]) -> tuple[list[Orphan], int]:
    """Version numbers of ``model`` without metadata, and the highest number claimed or used."""
    versions: set[int] = set()
    claims: dict[int, ObjectInfo] = {}
    data: defaultdict[int, list[ObjectInfo]] = defaultdict(list)
    for info in objects:
        if (n := layout.parse_metadata_key(info.key)) is not None:
            versions.add(n)
        elif (n := layout.parse_claim_key(info.key)) is not None:
            claims[n] = info
        elif (n := layout.parse_version_object(info.key)) is not None:
            data[n].append(info)
    highest = max(versions | set(claims) | set(data), default=0)
    orphans = [
        Orphan(model, n, claims.get(n), data.get(n, []))
        for n in sorted((set(claims) | set(data)) - versions)
    ]
    return orphans, highest


def _read_json(store: ObjectStore, bucket: str, key: str) -> dict[str, object] | None:
    try:
        doc = json.loads(store.get_bytes(bucket, key, max_bytes=1 << 20))
    except (NotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _owner(store: ObjectStore, bucket: str, orphan: Orphan) -> tuple[str, str] | None:
    """``(workflow_id, run_id)`` named in the orphan's claim, when it names one."""
    claim = _read_json(store, bucket, orphan.claim.key) if orphan.claim else None
    if claim is None:
        return None
    workflow_id, run_id = claim.get("workflow_id"), claim.get("run_id")
    if isinstance(workflow_id, str) and isinstance(run_id, str) and workflow_id and run_id:
        return workflow_id, run_id
    return None


def _sweep_orphan(
    sweep: Sweep, store: ObjectStore, bucket: str, runs: WorkflowRuns, orphan: Orphan, top: int
) -> None:
    owner = _owner(store, bucket, orphan)
    if owner is not None:
        state = runs.describe(*owner)
        if state is not None and state.running:  # a publish that is still trying
            sweep.skip_running(owner[0])
            return
    if store.exists(bucket, layout.metadata_key(orphan.model, orphan.version)):
        return  # finished meanwhile: it is a version now
    sweep.delete(bucket, "partial_versions", orphan.data)
    if owner is not None:
        index_key = layout.publish_key(orphan.model, *owner)
        index = _read_json(store, bucket, index_key)
        if index is not None and index.get("version") == orphan.version:
            info = store.stat(bucket, index_key)
            sweep.delete(bucket, "publish_indexes", [info] if info else [])
    if orphan.claim is not None:
        if orphan.version == top:
            sweep.watermarks.append(f"{orphan.model} v{orphan.version}")
        else:
            sweep.delete(bucket, "orphan_claims", [orphan.claim])


def sweep_models(
    sweep: Sweep,
    store: ObjectStore,
    bucket: str,
    runs: WorkflowRuns,
    policy: Policy,
    progress: Progress,
) -> None:
    """Sweep the dead publishes of every model in ``bucket`` (see the module)."""
    for folder in store.list_folders(bucket, MODELS):
        sweep.models_seen += 1
        progress("models", sweep.models_seen, 0)
        model = folder[len(MODELS) : -1]
        orphans, top = find_orphans(model, list(store.list(bucket, folder)))
        for orphan in orphans:
            if all(policy.older_than(info, policy.grace) for info in orphan.objects):
                _sweep_orphan(sweep, store, bucket, runs, orphan, top)


def published_sha256s(store: ObjectStore, bucket: str) -> set[str]:
    """The sha256 of every registered ``model.onnx`` (one metadata read per version)."""
    registry = Registry(store, bucket)
    found: set[str] = set()
    for folder in store.list_folders(bucket, MODELS):
        model = folder[len(MODELS) : -1]
        for version in registry.scan(model).versions:
            record = registry.metadata(model, version).artifacts.get("model.onnx")
            if record is not None:
                found.add(record.sha256)
    return found
