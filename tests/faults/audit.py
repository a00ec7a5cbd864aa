"""Judging a run from the outside: what the object store holds, read with the raw S3 client.

Nothing here trusts the code under test's own account of a run: versions are the
``metadata.json`` objects present, their artifacts are re-hashed from the bytes, production
is what ``production.json`` says, and every object under the registry, runs and snapshot
places of the model must be owned by a version (or by a run whose leftovers are documented,
such as a canceled run's checkpoints). Expected outcomes come from the request (its gate
policy) and the recorded measurements, never from the run's result.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from activities.contracts.gate import GatePolicy
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.outside import alias, objects, raw, sha256_of

ARTIFACTS = {"model.pt", "model.onnx", "results.csv", "report.md"}
"""The files every version has besides its metadata.json (docs/registry.md)."""

RUN_OBJECT = re.compile(
    r"^(checkpoints/epoch-\d{4}(-sample-\d{9})?\.pt(\.sig\.json)?|best\.pt|last\.pt|results\.csv|"
    r"export/model-[0-9a-f]{16}\.onnx|control/stop_early|logs/attempt-\d+\.log|"
    r"evaluation/[0-9a-f-]+-\d+/[A-Za-z0-9_./-]+\.(png|json|csv))$"
)
"""What a run may leave under ``runs/{workflow_id}/`` (any other name is a leftover)."""


@dataclass
class Found:
    """The store's state for one model, and everything wrong with it."""

    versions: list[int] = field(default_factory=list)
    production: int | None = None
    metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    """Artifacts named in a metadata.json that are missing or whose bytes do not match."""


def _keys(store: ObjectStore, bucket: str, prefix: str) -> list[str]:
    return sorted(objects(store, bucket, prefix))


def publish_index_name(workflow_id: str, run_id: str) -> str:
    """Name of the registry's index of one workflow run (docs/registry.md: ``publishes/``)."""
    return hashlib.sha256(f"{workflow_id}\n{run_id}".encode()).hexdigest()[:40]


def audit(
    store: ObjectStore, settings: Settings, model: str, *, kept_runs: frozenset[str] = frozenset()
) -> Found:
    """Versions, production and problems of ``model``; ``kept_runs``: workflow ids whose run
    objects stay without a version (a canceled run keeps its checkpoints)."""
    found = Found()
    registry = _keys(store, settings.models_bucket, f"models/{model}/")
    top = f"models/{model}/"
    for key in registry:
        if match := re.fullmatch(rf"{re.escape(top)}v(\d+)/metadata\.json", key):
            version = int(match.group(1))
            found.metadata[version] = json.loads(raw(store, settings.models_bucket, key))
    found.versions = sorted(found.metadata)
    owners = {(m["workflow_id"], m["run_id"]) for m in found.metadata.values()}
    for key in registry:
        if not _owned_registry_key(key.removeprefix(top), found, owners, store, settings, key):
            found.orphans.append(key)
    for version, meta in found.metadata.items():
        found.broken += _check_artifacts(store, settings, model, version, meta)
    found.production = alias(store, settings.models_bucket, model)
    latest = alias(store, settings.models_bucket, model, "latest")
    if latest != (max(found.versions) if found.versions else None):
        found.broken.append(f"latest.json names v{latest}, versions are {found.versions}")
    if found.production is not None and found.production not in found.versions:
        found.broken.append(f"production names v{found.production}, not a version")
    found.orphans += _run_orphans(store, settings, model, {w for w, _ in owners} | kept_runs)
    snapshots = {m["snapshot"]["key"] for m in found.metadata.values()}
    for key in _keys(store, settings.data_bucket, "snapshots/"):
        if model in key and not re.fullmatch(r"snapshots/[^/]+/[0-9a-f]{64}\.json", key):
            found.orphans.append(key)
        elif key.startswith(f"snapshots/{model}/") and found.versions and key not in snapshots:
            found.orphans.append(f"{key} (no version was trained on it)")
    return found


def _owned_registry_key(
    rel: str,
    found: Found,
    owners: set[tuple[str, str]],
    store: ObjectStore,
    settings: Settings,
    key: str,
) -> bool:
    """Whether ``models/{model}/{rel}`` belongs to a version or to the alias bookkeeping."""
    if rel in ("aliases/production.json", "aliases/latest.json"):
        return True
    if re.fullmatch(r"aliases/history/\d{8}\.json", rel):
        return True
    if match := re.fullmatch(r"v(\d+)/(.+)", rel):
        meta = found.metadata.get(int(match.group(1)))
        return meta is not None and (
            match.group(2) == "metadata.json"
            or meta["artifacts"].get(match.group(2), {}).get("key") == key
        )
    if match := re.fullmatch(r"claims/v(\d+)\.json", rel):
        claim = json.loads(raw(store, settings.models_bucket, key))
        meta = found.metadata.get(int(match.group(1)))
        return meta is not None and (claim["workflow_id"], claim["run_id"]) == (
            meta["workflow_id"],
            meta["run_id"],
        )
    if match := re.fullmatch(r"publishes/([0-9a-f]{40})\.json", rel):
        return match.group(1) in {publish_index_name(w, r) for w, r in owners}
    return False


def _check_artifacts(
    store: ObjectStore, settings: Settings, model: str, version: int, meta: dict[str, Any]
) -> list[str]:
    """Every artifact metadata.json names: present, at its key, with its sha256 and size."""
    problems = []
    artifacts = meta["artifacts"]
    names = set(artifacts)
    extra = {name for name in names - ARTIFACTS if not re.fullmatch(r"evidence/[\w./-]+", name)}
    if not names >= ARTIFACTS or extra:
        problems.append(f"v{version} names artifacts {sorted(artifacts)}")
    for name, record in artifacts.items():
        key = f"models/{model}/v{version}/{name}"
        if record["key"] != key:
            problems.append(f"v{version} {name} recorded at {record['key']}, expected {key}")
            continue
        try:
            data = raw(store, settings.models_bucket, key)
        except Exception as exc:  # minio's S3Error: missing object
            problems.append(f"{key} missing ({type(exc).__name__})")
            continue
        digest = sha256_of(data)
        if (digest, len(data)) != (record["sha256"], record["size"]):
            problems.append(f"{key}: bytes hash {digest[:12]} ({len(data)} B), recorded "
                            f"{record['sha256'][:12]} ({record['size']} B)")  # fmt: skip
    return problems


def _run_orphans(store: ObjectStore, settings: Settings, model: str, owners: set[str]) -> list[str]:
    """Objects of the runs bucket that mention ``model`` but no owner's allowed place."""
    orphans = []
    for key in _keys(store, settings.runs_bucket, ""):
        if model not in key:
            continue
        match = re.fullmatch(r"runs/([^/]+)/(.+)", key)
        if not (match and match.group(1) in owners and RUN_OBJECT.match(match.group(2))):
            orphans.append(key)
    return orphans


def expected_production(meta: dict[str, Any], policy: GatePolicy) -> int | None:
    """Production after a first version, from the request's policy and what was measured.

    No champion: the candidate's recorded mAP50-95 at or above the floor, and the recorded
    ONNX parity check passed (docs/registry.md). Written out here, not by calling the gate.
    """
    assert meta["champion_version"] is None, "only for a first version"
    score = meta["candidate"]["map50_95"]
    if math.isfinite(score) and score >= policy.floor and meta["parity"]["passed"]:
        return int(meta["version"])
    return None
