"""Object keys of the model registry (all in ``settings.models_bucket``)."""

from __future__ import annotations

import hashlib
import re

ARTIFACTS = ("model.pt", "model.onnx", "results.csv", "report.md")
METADATA = "metadata.json"


def model_prefix(model: str) -> str:
    return f"models/{model}/"


def version_prefix(model: str, version: int) -> str:
    return f"models/{model}/v{version}/"


def artifact_key(model: str, version: int, name: str) -> str:
    return f"{version_prefix(model, version)}{name}"


def metadata_key(model: str, version: int) -> str:
    return artifact_key(model, version, METADATA)


# The order results list a version's files in (the demo and the CLI print them so).
LISTING_ORDER = ("model.pt", "model.onnx", METADATA, "results.csv", "report.md")


def artifact_keys(data_keys: dict[str, str], *, metadata_key: str) -> dict[str, str]:
    """File name -> key for every file of a version, metadata included, in listing order."""
    keys = {**data_keys, METADATA: metadata_key}
    ordered = {name: keys[name] for name in LISTING_ORDER if name in keys}
    return {**ordered, **keys}


def version_label(version: int | None, missing: str = "none") -> str:
    """``v3`` in messages, or ``missing`` where there is no version."""
    return missing if version is None else f"v{version}"


def claim_key(model: str, version: int) -> str:
    """Written (conditionally) first: whoever creates it owns version number ``version``."""
    return f"models/{model}/claims/v{version}.json"


def publish_key(model: str, workflow_id: str, run_id: str) -> str:
    """Index from one workflow run to the version it claimed (idempotent retries)."""
    digest = hashlib.sha256(f"{workflow_id}\n{run_id}".encode()).hexdigest()[:40]
    return f"models/{model}/publishes/{digest}.json"


def production_key(model: str) -> str:
    return f"models/{model}/aliases/production.json"


def latest_key(model: str) -> str:
    return f"models/{model}/aliases/latest.json"


def history_prefix(model: str) -> str:
    return f"models/{model}/aliases/history/"


def history_key(model: str, seq: int) -> str:
    """One production move; ``seq`` is allocated by conditional create (append-only log)."""
    return f"{history_prefix(model)}{seq:08d}.json"


_METADATA = re.compile(r"^models/[^/]+/v(\d+)/metadata\.json$")
_CLAIM = re.compile(r"^models/[^/]+/claims/v(\d+)\.json$")
_HISTORY = re.compile(r"^models/[^/]+/aliases/history/(\d+)\.json$")
_VERSION_OBJECT = re.compile(r"^models/[^/]+/v(\d+)/")


def parse_metadata_key(key: str) -> int | None:
    match = _METADATA.match(key)
    return int(match.group(1)) if match else None


def parse_claim_key(key: str) -> int | None:
    match = _CLAIM.match(key)
    return int(match.group(1)) if match else None


def parse_history_key(key: str) -> int | None:
    match = _HISTORY.match(key)
    return int(match.group(1)) if match else None


def parse_version_object(key: str) -> int | None:
    """``N`` of any object under ``models/{name}/v{N}/`` (data or metadata)."""
    match = _VERSION_OBJECT.match(key)
    return int(match.group(1)) if match else None
