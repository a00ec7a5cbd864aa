"""The embedded stack's S3 mirror (workers/dev/s3_store.py) on moto's application in process:
what is written comes back after a "restart" (a fresh application), deletions stick, and a
blob that does not match its digest is refused."""

from __future__ import annotations

import json
from pathlib import Path

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from workers.dev.s3_store import INDEX, Mirror, Record


def _mirror(directory: Path) -> Mirror:
    return Mirror(DomainDispatcherApplication(create_backend_app), directory)


def _restarted(directory: Path) -> Mirror:
    """A mirror over an empty moto (its state is per process: reset it, as a restart would)."""
    mirror = _mirror(directory)
    mirror.s3.client.post("/moto-api/reset")
    assert mirror.s3.buckets() == []
    return mirror


def test_objects_metadata_and_deletions_survive_a_restart(tmp_path: Path) -> None:
    first = _restarted(tmp_path)
    assert first.restore() == (0, 0)
    first.s3.create_bucket("sentinel-data")
    meta = Record("", "", {"sha256": "ab" * 32}, "image/png")
    for key in ("datasets/a b+c/é.png", "datasets/x.png", "gone.txt"):
        first.s3.put("sentinel-data", key, key.encode(), meta)
    assert first.sync() == 3
    assert first.sync() == 0  # nothing changed: nothing fetched again
    first.s3.client.delete("/sentinel-data/gone.txt", headers=first.s3.auth)
    first.sync()

    second = _restarted(tmp_path)
    assert second.restore() == (1, 2)
    keys = dict(second.s3.keys("sentinel-data"))
    assert set(keys) == {"datasets/a b+c/é.png", "datasets/x.png"}
    got = second.s3.get("sentinel-data", "datasets/a b+c/é.png")
    assert got is not None
    data, _, metadata, content_type = got
    assert (data, metadata, content_type) == (
        b"datasets/a b+c/\xc3\xa9.png",
        meta.metadata,
        "image/png",
    )
    assert len(list((tmp_path / "blobs").iterdir())) == 2  # the deleted object's blob is gone


def test_a_blob_that_does_not_match_its_digest_is_not_restored(tmp_path: Path) -> None:
    first = _restarted(tmp_path)
    first.s3.create_bucket("sentinel-models")
    first.s3.put("sentinel-models", "m.pt", b"weights", Record("", "", {}, ""))
    first.sync()
    index = json.loads((tmp_path / INDEX).read_text())
    blob = index["sentinel-models"]["m.pt"]["blob"]
    (tmp_path / "blobs" / blob).write_bytes(b"tampered")

    second = _restarted(tmp_path)
    assert second.restore() == (1, 0)
    assert second.s3.get("sentinel-models", "m.pt") is None
