"""Contracts of ``sentinel models verify``: every artifact of a model checked against its
signed metadata, and every alias history entry against its signature."""

from __future__ import annotations

from pydantic import Field

from activities.contracts.common import Contract, ModelName


class VerifyModelRequest(Contract):
    """Check one version of ``model`` (``version``) or all of them (None)."""

    model: ModelName
    version: int | None = Field(None, ge=1, description="None: every version")


class ArtifactCheck(Contract):
    """One file of a version: its bytes against the sha256 its signed metadata records."""

    name: str
    key: str
    problem: str | None = Field(None, description="None: the bytes match")


class VersionCheck(Contract):
    """One version: its ``metadata.json`` signature, then each of its files."""

    version: int
    problem: str | None = Field(None, description="metadata.json: None when its signature holds")
    artifacts: list[ArtifactCheck] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None and all(a.problem is None for a in self.artifacts)


class VerifyModelResult(Contract):
    """What was checked and every failure found (``ok``: none)."""

    model: ModelName
    versions: list[VersionCheck]
    history_entries: int = Field(description="alias history entries checked")
    history_problems: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.history_problems and all(v.ok for v in self.versions)
