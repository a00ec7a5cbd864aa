"""The object store read from the outside: the raw S3 client, none of our storage code.

Tests judge what a run left behind with these, so that a bug in ``ObjectStore`` or in the
registry code cannot make its own output look right: listings with etags (what bytes an object
holds), raw bytes, and the aliases as their JSON says.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from activities.infra.storage import ObjectStore


def objects(store: ObjectStore, bucket: str, prefix: str) -> dict[str, str]:
    """Every object under ``prefix`` with its etag."""
    listing = store.client.list_objects(bucket, prefix=prefix, recursive=True)
    return {obj.object_name: obj.etag for obj in listing}


def raw(store: ObjectStore, bucket: str, key: str) -> bytes:
    """The object's bytes as S3 returns them (no sha256 check of ours)."""
    response = store.client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def alias(store: ObjectStore, bucket: str, model: str, name: str = "production") -> int | None:
    """The version ``models/{model}/aliases/{name}.json`` names; None when it does not exist."""
    key = f"models/{model}/aliases/{name}.json"
    if key not in objects(store, bucket, key):
        return None
    version = json.loads(raw(store, bucket, key))["version"]
    assert isinstance(version, int), f"{key} names version {version!r}"
    return version


def metadata(store: ObjectStore, bucket: str, model: str, version: int) -> dict[str, Any]:
    """``models/{model}/v{version}/metadata.json``, parsed from its bytes."""
    parsed: dict[str, Any] = json.loads(
        raw(store, bucket, f"models/{model}/v{version}/metadata.json")
    )
    return parsed


def alias_history(store: ObjectStore, bucket: str, model: str) -> list[dict[str, Any]]:
    """Every production move (``aliases/history/*.json``), oldest first, parsed."""
    prefix = f"models/{model}/aliases/history/"
    return [json.loads(raw(store, bucket, key)) for key in sorted(objects(store, bucket, prefix))]


def signed_body(data: bytes) -> dict[str, Any]:
    """A signed JSON document's fields, its ``hmac`` signature removed (asserted present)."""
    document = json.loads(data)
    assert isinstance(document.pop("hmac", None), dict), "the document is not signed"
    return dict(document)
