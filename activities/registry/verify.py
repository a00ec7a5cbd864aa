"""``sentinel models verify``: every signature and every byte of a model's registry entries.

Each version's ``metadata.json`` must carry a valid signature; each file it lists must hash to
the sha256 it records (downloaded to a scratch directory and deleted: nothing is unpickled);
each alias history entry must carry a valid signature. Failures are collected, not raised, so
one run names every bad object.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from activities.contracts.integrity import (
    ArtifactCheck,
    VerifyModelRequest,
    VerifyModelResult,
    VersionCheck,
)
from activities.contracts.registry import AliasEvent
from activities.infra.errors import NotFoundError, SentinelError
from activities.infra.heartbeat import Progress, no_progress
from activities.registry import layout
from activities.registry.core import Registry


def _check_version(registry: Registry, model: str, version: int, work: Path) -> VersionCheck:
    try:
        meta = registry.metadata(model, version)
    except SentinelError as exc:
        return VersionCheck(version=version, problem=f"{type(exc).__name__}: {exc}")
    checks: list[ArtifactCheck] = []
    for name, record in sorted(meta.artifacts.items()):
        problem = None
        try:
            dest = work / f"v{version}-{len(checks)}"
            registry.store.get_file(
                registry.bucket, record.key, dest, expected_sha256=record.sha256
            )
            dest.unlink(missing_ok=True)
        except SentinelError as exc:  # IntegrityError, NotFoundError
            problem = f"{type(exc).__name__}: {exc}"
        checks.append(ArtifactCheck(name=name, key=record.key, problem=problem))
    return VersionCheck(version=version, artifacts=checks)


def verify_model(
    registry: Registry, request: VerifyModelRequest, progress: Progress = no_progress
) -> VerifyModelResult:
    """Check ``request.model`` (one version, or all); NotFoundError when there is nothing."""
    model = request.model
    scan = registry.scan(model)
    if request.version is not None:
        if request.version not in scan.versions:
            raise NotFoundError(f"model {model!r} has no version {request.version}")
        numbers = [request.version]
    else:
        numbers = sorted(scan.versions)
        if not numbers and not scan.history:
            raise NotFoundError(f"model {model!r} has no versions in {registry.bucket!r}")
    history_problems = []
    for seq in scan.history:
        try:
            registry.read(layout.history_key(model, seq), AliasEvent)
        except SentinelError as exc:
            history_problems.append(f"{type(exc).__name__}: {exc}")
    versions = []
    with tempfile.TemporaryDirectory(prefix="sentinel-verify-") as tmp:
        for done, number in enumerate(numbers, start=1):
            versions.append(_check_version(registry, model, number, Path(tmp)))
            progress("verify", done, len(numbers))
    return VerifyModelResult(
        model=model,
        versions=versions,
        history_entries=len(scan.history),
        history_problems=history_problems,
    )
